// What both pages share: building the DOM from data (as text, never as HTML), durations and
// times, the JSON API, and the token the write form asks for.
"use strict";

const STATUSES = ["OK", "WARNING", "CRITICAL", "UNKNOWN"];
const COLORS = { OK: "#2e9e44", WARNING: "#f2c200", CRITICAL: "#d62d20", UNKNOWN: "#9aa0a6" };
const SEVERITY = { OK: 0, WARNING: 1, UNKNOWN: 2, CRITICAL: 3 };
const TOKEN_KEY = "accre-monitor-token";

// An element: props set as attributes ("text" as textContent, "class", "on..." listeners);
// children are nodes or strings, strings always as text nodes.
function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = String(value);
    else if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// `45s`, `12m`, `3.5h`, `2.1d`, as `accre-pipeline overview` says how long.
function duration(seconds) {
  seconds = Math.max(0, seconds);
  if (seconds < 60) return `${Math.round(seconds)}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86400) return `${(seconds / 3600).toFixed(1)}h`;
  return `${(seconds / 86400).toFixed(1)}d`;
}

function clock(epochSeconds) {
  return new Date(epochSeconds * 1000).toLocaleTimeString([], { hour12: false });
}

function moment(epochSeconds) {
  const date = new Date(epochSeconds * 1000);
  return `${date.toLocaleDateString()} ${date.toLocaleTimeString([], { hour12: false })}`;
}

function nodeHref(node) {
  return "/node/" + encodeURIComponent(node);
}

// {ok, status, data, error}: `error` is one line (the server's, or why it could not be asked).
async function api(path, options) {
  let response;
  try {
    response = await fetch(path, { cache: "no-store", ...options });
  } catch (exc) {
    return { ok: false, status: 0, data: null, error: `cannot reach the server (${exc.message})` };
  }
  let data = null;
  const text = await response.text().catch(() => "");
  try {
    data = text ? JSON.parse(text) : null;
  } catch (exc) {
    data = null;
  }
  if (response.ok) return { ok: true, status: response.status, data, error: null };
  const said = data && typeof data.error === "string" ? data.error : text.split("\n")[0];
  return { ok: false, status: response.status, data, error: said || `HTTP ${response.status}` };
}

function storedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  } catch (exc) {
    return "";
  }
}

function storeToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch (exc) {
    // private windows may refuse: the form asks again
  }
}

function statusBadge(status, stale, silenced) {
  return el(
    "span",
    { class: "badge" },
    el("span", { class: `status s-${status}`, text: status }),
    stale ? [" ", el("span", { class: "tag tag-stale", text: "stale" })] : null,
    silenced ? [" ", el("span", { class: "tag tag-silenced", text: "silenced" })] : null,
  );
}
