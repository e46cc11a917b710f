// One node's page: every check with its status, texts, data, age, occurrences and silence,
// refreshed from /api/node/NAME every few seconds.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const name = decodeURIComponent(location.pathname.replace(/^\/node\//, ""));
  let refreshSeconds = 5;
  let receivedAt = 0;
  let timer = null;
  const open = new Set(); // the checks whose details the reader opened or closed
  const closed = new Set();

  document.title = `${name} · accre-monitor`;
  $("title").textContent = name;

  function since(iso, now) {
    return duration(now - Date.parse(iso) / 1000);
  }

  function silenceText(ids, silences) {
    return ids
      .map((id) => (silences[id] ? `${silences[id].comment} (${id.slice(0, 8)})` : id.slice(0, 8)))
      .join("; ");
  }

  function render(data) {
    const now = data.now;
    const parts = [];
    if (data.last) parts.push(`latest result ${duration(now - data.last)} ago`);
    if (data.silent) parts.push("silent: a keepalive record says no result comes from it");
    if (data.back) parts.push(`came back ${duration(now - data.back)} ago`);
    parts.push(`updated ${clock(receivedAt / 1000)}`);
    $("liveness").textContent = parts.join(" · ");
    const rows = data.checks.map((c) =>
      el(
        "tr",
        { class: `p-${c.status}`, "data-check": c.check },
        el("td", {}, statusBadge(c.status, c.stale, c.silenced.length > 0)),
        el("td", {}, el("a", { href: `#check-${encodeURIComponent(c.check)}`, text: c.check })),
        el("td", { text: since(c.date, now) }),
        el("td", { text: since(c.since, now) }),
        el("td", {
          class: "num",
          text: c.status === "OK" ? c.occurrences : `${c.occurrences} (highest ${c.watermark})`,
        }),
        el("td", { class: "silence", text: silenceText(c.silenced, data.silences) }),
        el("td", { class: "short", text: c.short || "" }),
      ),
    );
    $("checks").tBodies[0].replaceChildren(...rows);
    const details = data.checks.map((c) => {
      const shown = open.has(c.check) || (!closed.has(c.check) && (c.status !== "OK" || c.stale));
      const box = el(
        "details",
        { id: `check-${encodeURIComponent(c.check)}`, class: `check p-${c.status}`, open: shown },
        el("summary", {}, statusBadge(c.status, c.stale, c.silenced.length > 0), " ", el("b", { text: c.check }), " ", c.short || ""),
        el(
          "dl",
          {},
          el("dt", { text: "latest result" }),
          el("dd", { text: `${c.date} (${since(c.date, now)} ago), record ${c.record_id}` }),
          el("dt", { text: "status since" }),
          el("dd", { text: `${c.since} (${since(c.since, now)})` }),
          el("dt", { text: "occurrences" }),
          el("dd", { text: `${c.occurrences} in a row; highest of this problem ${c.watermark}` }),
          el("dt", { text: "ttl" }),
          el("dd", { text: c.ttl ? `${c.ttl} s${c.stale ? ": stale" : ""}` : "none" }),
          el("dt", { text: "runtime" }),
          el("dd", { text: c.runtime === null || c.runtime === undefined ? "-" : `${c.runtime} s` }),
          el("dt", { text: "silence" }),
          el("dd", { text: silenceText(c.silenced, data.silences) || "none" }),
        ),
        el("h4", { text: "long text" }),
        el("pre", { class: "long", text: c.long || "(none)" }),
        el("h4", { text: "data" }),
        el("pre", { class: "data", text: c.data === null || c.data === undefined ? "(none)" : JSON.stringify(c.data, null, 2) }),
      );
      box.addEventListener("toggle", () => {
        (box.open ? open : closed).add(c.check);
        (box.open ? closed : open).delete(c.check);
      });
      return box;
    });
    $("details").replaceChildren(...details);
  }

  async function refresh() {
    clearTimeout(timer);
    const answer = await api(`/api/node/${encodeURIComponent(name)}`);
    const banner = $("banner");
    if (answer.ok) {
      receivedAt = Date.now();
      refreshSeconds = answer.data.refresh || refreshSeconds;
      banner.hidden = true;
      render(answer.data);
    } else {
      banner.textContent = receivedAt
        ? `The data shown is from ${clock(receivedAt / 1000)}: ${answer.error}`
        : answer.error;
      banner.hidden = false;
    }
    timer = setTimeout(refresh, refreshSeconds * 1000);
  }

  refresh();
})();
