// The cluster page: counts, a heat map of every node and check on a canvas, the problems
// worst first, the silences; filtered by node and check globs and a status, refreshed from
// /api/grid every few seconds without a reload.
//
// Why a canvas: 2,000 nodes x 30 checks are 60,000 cells; as DOM elements (each with its
// title) they take seconds to lay out and redraw on every refresh, drawn they take a few
// milliseconds, and one picture is what can be read at a glance. A cell's details come from
// the data under the pointer (the tooltip) and a click opens the node's page.
"use strict";

(() => {
  const PROBLEMS_SHOWN = 500; // rows of the problems table; the filters narrow the rest
  const SIZES = [16, 14, 12, 10, 8, 6, 5, 4]; // cell sizes tried, largest first
  const GAP = 1;
  const COLUMN_GAP = 14;
  const GROUP_HEADER = 18;
  const GROUP_SPACE = 6;
  const DIMMED = 0.3; // a silenced cell's opacity
  const FILTERED_OUT = "#eceff1";

  const $ = (id) => document.getElementById(id);
  const canvas = $("map");
  const tip = $("tip");
  const page = {
    data: null,
    receivedAt: 0, // Date.now() when data came
    error: null, // the last refresh's error line, or null
    refresh: 5,
    layout: null,
    renders: 0,
    timer: null,
    timing: null,
    firstDrawnAt: 0,
  };

  // -- filters ---------------------------------------------------------------------------

  // A glob as fnmatch reads it; text without a wildcard matches anywhere in the name.
  // Several, separated by spaces or commas: any of them.
  function matcher(text) {
    const globs = text.split(/[\s,]+/).filter(Boolean);
    if (!globs.length) return null;
    const sources = globs.map((glob) => {
      if (!/[*?[]/.test(glob)) glob = `*${glob}*`;
      let source = "";
      for (let i = 0; i < glob.length; i++) {
        const char = glob[i];
        if (char === "*") source += ".*";
        else if (char === "?") source += ".";
        else if (char === "[") {
          const end = glob.indexOf("]", i + 2);
          if (end < 0) {
            source += "\\[";
            continue;
          }
          let inside = glob.slice(i + 1, end);
          const negate = inside[0] === "!";
          if (negate) inside = inside.slice(1);
          source += `[${negate ? "^" : ""}${inside.replace(/[\\\]^]/g, "\\$&")}]`;
          i = end;
        } else source += char.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
      }
      return `^(?:${source})$`;
    });
    const regex = new RegExp(sources.join("|"));
    return (name) => regex.test(name);
  }

  function readFilters() {
    return {
      node: $("f-node").value.trim(),
      check: $("f-check").value.trim(),
      status: $("f-status").value,
    };
  }

  function filtersFromHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    $("f-node").value = params.get("node") || "";
    $("f-check").value = params.get("check") || "";
    $("f-status").value = params.get("status") || "";
  }

  function filtersToHash(filters) {
    const params = new URLSearchParams();
    for (const key of ["node", "check", "status"]) if (filters[key]) params.set(key, filters[key]);
    const hash = params.toString();
    history.replaceState(null, "", hash ? `#${hash}` : location.pathname);
  }

  function decode(code) {
    const value = code.charCodeAt(0) - 97;
    return { status: STATUSES[value >> 2], stale: (value & 2) !== 0, silenced: (value & 1) !== 0 };
  }

  function statusMatch(filter) {
    if (!filter) return () => true;
    if (filter === "problems") return (c) => c.status !== "OK" || c.stale || c.silenced;
    if (filter === "stale") return (c) => c.stale;
    if (filter === "silenced") return (c) => c.silenced;
    return (c) => c.status === filter;
  }

  // What the filters leave: the node and check indexes shown, and which cells match.
  function selection(data, filters) {
    const nodeOk = matcher(filters.node);
    const checkOk = matcher(filters.check);
    const cellOk = statusMatch(filters.status);
    const checks = [];
    data.checks.forEach((name, index) => {
      if (!checkOk || checkOk(name)) checks.push(index);
    });
    const width = data.checks.length;
    const nodes = [];
    data.nodes.forEach((name, index) => {
      if (nodeOk && !nodeOk(name)) return;
      if (filters.status) {
        const any = checks.some((j) => {
          const code = data.cells[index * width + j];
          return code !== "." && cellOk(decode(code));
        });
        if (!any) return;
      }
      nodes.push(index);
    });
    return { nodes, checks, cellOk, nodeOk, checkOk, filtered: Boolean(nodeOk || checkOk || filters.status) };
  }

  // -- layout and drawing ------------------------------------------------------------------

  function layoutFor(data, chosen, width, size) {
    const pitch = size + GAP;
    const longestNode = Math.max(1, ...chosen.nodes.map((i) => data.nodes[i].length));
    const longestCheck = Math.max(1, ...chosen.checks.map((j) => data.checks[j].length));
    const label = size >= 12 ? Math.min(180, longestNode * 7 + 8) : 0;
    const header = size >= 12 ? Math.min(120, longestCheck * 6 + 10) : 0;
    const block = label + chosen.checks.length * pitch;
    const columns = Math.max(1, Math.floor((width + COLUMN_GAP) / (block + COLUMN_GAP)));
    const groups = [];
    let group = null;
    for (const index of chosen.nodes) {
      const prefix = data.groupOf[index];
      if (!group || group.prefix !== prefix) {
        group = { prefix, nodes: [] };
        groups.push(group);
      }
      group.nodes.push(index);
    }
    let y = header;
    const rows = []; // per node shown: {node, x, y}
    for (const g of groups) {
      g.y = y;
      y += GROUP_HEADER;
      const perColumn = Math.ceil(g.nodes.length / columns);
      g.nodes.forEach((node, k) => {
        const column = Math.floor(k / perColumn);
        rows.push({ node, x: column * (block + COLUMN_GAP) + label, y: y + (k % perColumn) * pitch });
      });
      y += perColumn * pitch + GROUP_SPACE;
    }
    return { size, pitch, label, header, block, columns, groups, rows, height: Math.max(y, 40), width };
  }

  function chooseLayout(data, chosen) {
    const width = Math.max(320, $("map-wrap").clientWidth);
    const room = Math.max(360, window.innerHeight - 220);
    let layout = null;
    for (const size of SIZES) {
      layout = layoutFor(data, chosen, width, size);
      if (layout.height <= room) break;
    }
    return layout;
  }

  let hatch = null;
  function hatchPattern(ctx) {
    if (hatch) return hatch;
    const tile = document.createElement("canvas");
    tile.width = tile.height = 4;
    const t = tile.getContext("2d");
    t.fillStyle = "rgba(0, 0, 0, 0.55)";
    for (let i = 0; i < 4; i++) t.fillRect(3 - i, i, 1, 1); // one diagonal stripe
    hatch = ctx.createPattern(tile, "repeat");
    return hatch;
  }

  function draw(data, chosen, layout) {
    const ratio = window.devicePixelRatio || 1;
    canvas.style.width = `${layout.width}px`;
    canvas.style.height = `${layout.height}px`;
    canvas.width = Math.round(layout.width * ratio);
    canvas.height = Math.round(layout.height * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.fillStyle = "#fff"; // opaque: a dimmed cell is the colour one sees
    ctx.fillRect(0, 0, layout.width, layout.height);
    const width = data.checks.length;
    const { size, pitch } = layout;
    ctx.textBaseline = "middle";
    // check names over each column of nodes, when cells are large enough to read them
    if (layout.header) {
      ctx.fillStyle = "#444";
      ctx.font = "11px system-ui, sans-serif";
      for (let column = 0; column < layout.columns; column++) {
        const x0 = column * (layout.block + COLUMN_GAP) + layout.label;
        chosen.checks.forEach((j, k) => {
          ctx.save();
          ctx.translate(x0 + k * pitch + size / 2 + 1, layout.header - 4);
          ctx.rotate(-Math.PI / 3);
          ctx.fillText(data.checks[j], 0, 0);
          ctx.restore();
        });
      }
    }
    for (const g of layout.groups) {
      ctx.fillStyle = "#333";
      ctx.font = "bold 12px system-ui, sans-serif";
      const bad = g.nodes.reduce((sum, i) => sum + (data.nodeWorst[i] > 0 ? 1 : 0), 0);
      const label = `${g.prefix} · ${g.nodes.length} node${g.nodes.length === 1 ? "" : "s"}` +
        (bad ? ` · ${bad} with problems` : "");
      ctx.fillText(label, 0, g.y + GROUP_HEADER / 2);
    }
    ctx.font = "11px ui-monospace, monospace";
    ctx.textAlign = "right";
    const stale = [];
    for (const row of layout.rows) {
      if (layout.label) {
        ctx.fillStyle = "#333";
        ctx.fillText(data.nodes[row.node], row.x - 6, row.y + size / 2);
      }
      chosen.checks.forEach((j, k) => {
        const code = data.cells[row.node * width + j];
        if (code === ".") return;
        const cell = decode(code);
        const x = row.x + k * pitch;
        if (!chosen.cellOk(cell)) {
          ctx.fillStyle = FILTERED_OUT;
          ctx.fillRect(x, row.y, size, size);
          return;
        }
        ctx.globalAlpha = cell.silenced ? DIMMED : 1;
        ctx.fillStyle = COLORS[cell.status];
        ctx.fillRect(x, row.y, size, size);
        ctx.globalAlpha = 1;
        if (cell.stale) stale.push(x, row.y);
      });
    }
    ctx.textAlign = "left";
    if (stale.length) {
      ctx.fillStyle = hatchPattern(ctx);
      for (let i = 0; i < stale.length; i += 2) ctx.fillRect(stale[i], stale[i + 1], size, size);
    }
  }

  // The node and check under a point of the canvas (CSS pixels), or null.
  function cellAt(x, y) {
    const layout = page.layout;
    if (!layout) return null;
    for (const row of layout.rows) {
      if (y < row.y || y >= row.y + layout.size || x < row.x) continue;
      const k = Math.floor((x - row.x) / layout.pitch);
      if (k >= page.chosen.checks.length || x - row.x - k * layout.pitch >= layout.size) continue;
      const check = page.chosen.checks[k];
      const index = row.node * page.data.checks.length + check;
      if (page.data.cells[index] === ".") return null;
      return { node: row.node, check, index };
    }
    return null;
  }

  function showTip(event) {
    const bounds = canvas.getBoundingClientRect();
    const hit = cellAt(event.clientX - bounds.left, event.clientY - bounds.top);
    if (!hit) {
      tip.hidden = true;
      canvas.style.cursor = "default";
      return;
    }
    const data = page.data;
    const cell = decode(data.cells[hit.index]);
    const lines = [
      `${data.nodes[hit.node]} · ${data.checks[hit.check]}`,
      [cell.status, cell.stale ? "stale" : "", cell.silenced ? "silenced" : ""].filter(Boolean).join(" · "),
      `last result ${duration(data.age[hit.index] + elapsed())} ago`,
    ];
    if (data.short[hit.index]) lines.push(data.short[hit.index]);
    tip.replaceChildren(...lines.map((line, i) => el("div", { class: i ? "" : "tip-title", text: line })));
    tip.hidden = false;
    const wrap = $("map-wrap").getBoundingClientRect();
    const left = Math.min(event.clientX - wrap.left + 14, wrap.width - tip.offsetWidth - 4);
    tip.style.left = `${Math.max(0, left)}px`;
    tip.style.top = `${event.clientY - wrap.top + 16}px`;
    canvas.style.cursor = "pointer";
  }

  // -- the rest of the page ------------------------------------------------------------------

  function elapsed() {
    return (Date.now() - page.receivedAt) / 1000;
  }

  function renderCounts(data, chosen) {
    const tally = { OK: 0, WARNING: 0, CRITICAL: 0, UNKNOWN: 0, stale: 0, silenced: 0 };
    const width = data.checks.length;
    const nodes = chosen.nodeOk ? data.nodes.map((_, i) => i).filter((i) => chosen.nodeOk(data.nodes[i])) : null;
    for (const i of nodes || data.nodes.keys()) {
      for (const j of chosen.checks) {
        const code = data.cells[i * width + j];
        if (code === ".") continue;
        const cell = decode(code);
        tally[cell.status] += 1;
        if (cell.stale) tally.stale += 1;
        if (cell.silenced) tally.silenced += 1;
      }
    }
    const total = STATUSES.reduce((sum, s) => sum + tally[s], 0);
    $("counts").replaceChildren(
      ...Object.entries(tally).map(([key, value]) =>
        el("span", { class: `count c-${key}`, "data-count": key }, el("b", { text: value }), ` ${key}`),
      ),
      el("span", {
        class: "count total",
        text: `${total} checks on ${nodes ? nodes.length : data.nodes.length} nodes` +
          (chosen.nodeOk || chosen.checkOk ? " (filtered)" : ""),
      }),
    );
  }

  function silenceLabel(ids) {
    if (!ids.length) return "";
    const found = page.data.silences.find((s) => s.id === ids[0]);
    const text = found ? found.comment : ids[0].slice(0, 8);
    return ids.length > 1 ? `${text} (+${ids.length - 1} more)` : text;
  }

  function renderProblems(data, chosen) {
    const width = data.checks.length;
    const rows = [];
    let matching = 0;
    for (const [index, since, occurrences, silenced] of data.problems) {
      const node = Math.floor(index / width);
      const check = index % width;
      if (chosen.nodeOk && !chosen.nodeOk(data.nodes[node])) continue;
      if (chosen.checkOk && !chosen.checkOk(data.checks[check])) continue;
      const cell = decode(data.cells[index]);
      if (!chosen.cellOk(cell)) continue;
      matching += 1;
      if (rows.length >= PROBLEMS_SHOWN) continue;
      const nodeName = data.nodes[node];
      rows.push(
        el(
          "tr",
          { class: `p-${cell.status}`, "data-node": nodeName, "data-check": data.checks[check] },
          el("td", {}, statusBadge(cell.status, cell.stale, cell.silenced)),
          el("td", {}, el("a", { href: nodeHref(nodeName), text: nodeName })),
          el("td", { text: data.checks[check] }),
          el("td", { text: duration(since + elapsed()) }),
          el("td", { class: "num", text: occurrences }),
          el("td", { text: duration(data.age[index] + elapsed()) }),
          el("td", { class: "silence", text: silenceLabel(silenced) }),
          el("td", { class: "short", text: data.short[index] || "" }),
        ),
      );
    }
    $("problems").tBodies[0].replaceChildren(...rows);
    $("problems-title").textContent = `Problems (${matching})`;
    let note = "";
    if (!data.problems.length) note = "Every check is OK, fresh and not silenced.";
    else if (!matching) note = "Nothing here matches the filters.";
    else if (matching > rows.length) note = `${matching - rows.length} more not shown: narrow the filters.`;
    $("problems-note").textContent = note;
  }

  function renderSilences(data) {
    const writable = data.writable;
    const rows = data.silences.map((s) =>
      el(
        "tr",
        { "data-silence": s.id },
        el("td", { class: "mono", title: s.id, text: s.id.slice(0, 8) }),
        el("td", { class: "mono", text: s.node }),
        el("td", { class: "mono", text: s.check }),
        el("td", { text: moment(Date.parse(s.begin) / 1000) }),
        el("td", { text: s.end ? moment(Date.parse(s.end) / 1000) : s.on_resolve ? "with the next OK" : "when removed" }),
        el("td", { text: s.comment }),
        el("td", {}, writable ? el("button", { type: "button", class: "remove", onclick: () => removeSilence(s.id), text: "remove" }) : null),
      ),
    );
    $("silences").tBodies[0].replaceChildren(...rows);
    $("silences-note").textContent = data.silences.length ? "" : "No silences.";
    const form = $("silence-form");
    form.hidden = !writable;
    if (!writable) {
      $("silences-note").textContent +=
        (data.silences.length ? "" : " ") +
        "Adding silences here is off: it needs [serve] token; `accre-pipeline silence add` works meanwhile.";
    }
  }

  function renderFreshness() {
    const data = page.data;
    const parts = [];
    if (data) {
      parts.push(`updated ${clock(page.receivedAt / 1000)} · refresh every ${page.refresh}s · ${data.store}`);
      const dog = data.watchdog;
      if (!dog) parts.push("no watchdog has run on this state (stale checks are called by `accre-pipeline ship`)");
      else {
        const ago = data.now - dog.at + elapsed();
        parts.push(`watchdog: last round ${duration(ago)} ago`);
      }
    }
    $("freshness").textContent = parts.join(" · ");
    const banner = $("banner");
    const old = data ? elapsed() : 0;
    let text = "";
    if (!data && page.error) text = page.error;
    else if (data && old > 2 * page.refresh) {
      text = `The data shown is ${duration(old)} old (from ${clock(page.receivedAt / 1000)}): ` +
        (page.error || "the server has not answered since");
    } else if (data && data.watchdog) {
      const ago = data.now - data.watchdog.at + elapsed();
      const limit = Math.max(60, 10 * (data.watchdog_interval || 1));
      if (ago > limit) text = `The watchdog's last round was ${duration(ago)} ago: is a shipper running? Checks that stop reporting are not called stale meanwhile.`;
    }
    banner.textContent = text;
    banner.hidden = !text;
    banner.classList.toggle("old", Boolean(data && old > 2 * page.refresh));
  }

  function renderLegend() {
    const swatch = (cls, text) => el("span", { class: "legend-item" }, el("span", { class: `swatch ${cls}` }), text);
    $("legend").replaceChildren(
      swatch("s-OK", "OK"),
      swatch("s-WARNING", "WARNING"),
      swatch("s-CRITICAL", "CRITICAL"),
      swatch("s-UNKNOWN", "UNKNOWN"),
      swatch("s-CRITICAL hatched", "stale"),
      swatch("s-CRITICAL dimmed", "silenced"),
      el("span", { class: "legend-hint", text: "point at a cell for its details; click it for the node" }),
    );
  }

  function prepare(data) {
    // per node: its group, and its worst cell (for the group headers)
    data.groupOf = new Array(data.nodes.length);
    for (const [prefix, start, count] of data.groups) {
      for (let i = start; i < start + count; i++) data.groupOf[i] = prefix;
    }
    const width = data.checks.length;
    data.nodeWorst = data.nodes.map((_, i) => {
      let worst = 0;
      for (let j = 0; j < width; j++) {
        const code = data.cells[i * width + j];
        if (code === ".") continue;
        const cell = decode(code);
        if (cell.status !== "OK" || cell.stale) worst = Math.max(worst, 1 + SEVERITY[cell.status]);
      }
      return worst;
    });
  }

  function render() {
    const data = page.data;
    renderFreshness();
    if (!data) return;
    const filters = readFilters();
    const chosen = selection(data, filters);
    page.chosen = chosen;
    renderCounts(data, chosen);
    if (data.empty || !data.nodes.length) {
      $("map-note").textContent = data.empty
        ? `The state is empty: no result has been taken into it yet (${data.store}).`
        : "The state holds no node yet.";
    } else if (!chosen.nodes.length || !chosen.checks.length) {
      $("map-note").textContent = "No node and check match the filters.";
    } else {
      $("map-note").textContent = "";
    }
    page.layout = chooseLayout(data, chosen);
    draw(data, chosen, page.layout);
    renderProblems(data, chosen);
    renderSilences(data);
    page.renders += 1;
  }

  // -- refreshing ------------------------------------------------------------------------------

  async function refresh() {
    clearTimeout(page.timer);
    const started = performance.now();
    const answer = await api("/api/grid");
    if (answer.ok && answer.data) {
      const fetched = performance.now();
      page.data = answer.data;
      page.receivedAt = Date.now();
      page.error = null;
      page.refresh = answer.data.refresh || page.refresh;
      prepare(page.data);
      render();
      const drawn = performance.now();
      // milliseconds: fetching and parsing the data, drawing it, and when (since the page began)
      page.timing = { fetch: fetched - started, draw: drawn - fetched, drawnAt: drawn };
      page.firstDrawnAt = page.firstDrawnAt || drawn;
    } else {
      page.error = answer.error;
      renderFreshness();
    }
    page.timer = setTimeout(refresh, page.refresh * 1000);
  }

  // -- silences ---------------------------------------------------------------------------------

  function tokenHeaders(form) {
    const token = form ? form.elements.token.value.trim() : storedToken();
    if (form) storeToken(token);
    return token ? { authorization: `Bearer ${token}` } : {};
  }

  function whenGiven(value) {
    return value ? new Date(value).toISOString() : null; // datetime-local is the browser's time
  }

  async function addSilence(event) {
    event.preventDefault();
    const form = event.target;
    const f = form.elements;
    const ends = f.ends.value;
    const body = {
      node: f.node.value.trim() || null,
      check: f.check.value.trim() || null,
      begin: whenGiven(f.begin.value),
      expire: ends === "expire" ? f.expire.value.trim() || null : null,
      until: ends === "until" ? whenGiven(f.until.value) : null,
      on_resolve: ends === "on_resolve",
      comment: f.comment.value,
    };
    const result = $("silence-result");
    result.textContent = "adding…";
    const answer = await api("/api/silences", {
      method: "POST",
      headers: { "content-type": "application/json", ...tokenHeaders(form) },
      body: JSON.stringify(body),
    });
    if (!answer.ok) {
      result.textContent = `Refused (${answer.status}): ${answer.error}`;
      result.className = "note refused";
      return;
    }
    const covers = answer.data.covers;
    result.textContent = `Silence ${answer.data.id.slice(0, 8)} added; it covers ${covers} check${covers === 1 ? "" : "s"} now.`;
    result.className = "note done";
    f.comment.value = "";
    refresh();
  }

  async function removeSilence(id) {
    const form = $("silence-form");
    const result = $("silence-result");
    const answer = await api(`/api/silences/${encodeURIComponent(id)}`, {
      method: "DELETE",
      headers: tokenHeaders(form.elements.token.value ? form : null),
    });
    result.textContent = answer.ok ? `Silence ${id.slice(0, 8)} removed.` : `Refused (${answer.status}): ${answer.error}`;
    result.className = answer.ok ? "note done" : "note refused";
    if (answer.ok) refresh();
  }

  // -- start -----------------------------------------------------------------------------------

  filtersFromHash();
  renderLegend();
  $("silence-form").elements.token.value = storedToken();
  let pending = null;
  const onFilter = () => {
    clearTimeout(pending);
    pending = setTimeout(() => {
      filtersToHash(readFilters());
      render();
    }, 120);
  };
  for (const id of ["f-node", "f-check"]) $(id).addEventListener("input", onFilter);
  $("f-status").addEventListener("change", onFilter);
  $("f-clear").addEventListener("click", () => {
    $("f-node").value = $("f-check").value = $("f-status").value = "";
    onFilter();
  });
  $("filters").addEventListener("submit", (event) => event.preventDefault());
  $("silence-form").addEventListener("submit", addSilence);
  canvas.addEventListener("mousemove", showTip);
  canvas.addEventListener("mouseleave", () => {
    tip.hidden = true;
  });
  canvas.addEventListener("click", (event) => {
    const bounds = canvas.getBoundingClientRect();
    const hit = cellAt(event.clientX - bounds.left, event.clientY - bounds.top);
    if (hit) location.href = nodeHref(page.data.nodes[hit.node]);
  });
  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(render, 150);
  });
  setInterval(renderFreshness, 1000);
  refresh();

  // what a test or a curious operator can ask the page
  window.statusPage = {
    get data() {
      return page.data;
    },
    get renders() {
      return page.renders;
    },
    get timing() {
      return { ...page.timing, firstDrawnAt: page.firstDrawnAt };
    },
    // the rectangle of a cell on the canvas, in CSS pixels (null: not shown)
    cellRect(node, check) {
      const data = page.data;
      const layout = page.layout;
      if (!data || !layout) return null;
      const i = data.nodes.indexOf(node);
      const k = page.chosen.checks.indexOf(data.checks.indexOf(check));
      const row = layout.rows.find((r) => r.node === i);
      if (!row || k < 0) return null;
      return { x: row.x + k * layout.pitch, y: row.y, size: layout.size };
    },
    refresh,
  };
})();
