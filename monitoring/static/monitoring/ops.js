/* The performance dashboard: history charts from /ops/api/series (uPlot), tables from
   /ops/api/tables, headline tiles and today's orders live over ws/ops/. Nothing reloads the page. */
(function () {
  "use strict";
  const root = document.getElementById("ops");
  if (!root) return;
  const PALETTE = ["#2f7ed8", "#e4572e", "#29a36a", "#c9a227", "#8e5ea2", "#17becf", "#d62728", "#7f7f7f"];
  const REFRESH_MS = 60000;
  // every time on the page in the zone the header says (UTC unless the viewer chose their own)
  const ZONE = root.dataset.tz || "UTC";
  const state = { range: "1h", charts: {}, frames: 0, lastFrame: null, series: null, socket: null, events: [] };
  window.opsDashboard = state;  // for people poking at it in the console (and the browser tests)

  const css = (name, fallback) => getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
  const hosts = () => Array.from(root.querySelectorAll(".ops-host:checked")).map((el) => el.value);

  function axes(unit) {
    const stroke = css("--body-quiet-color", "#666");
    const grid = { stroke: css("--hairline-color", "#ddd"), width: 1 };
    return [
      { stroke, grid, ticks: grid },
      { stroke, grid, ticks: grid, size: 60, values: (u, vals) => vals.map((v) => v == null ? "" : fmt(v) + (unit || "")) },
    ];
  }

  function fmt(v) {
    const a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(1) + "G";
    if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (a >= 1e3) return (v / 1e3).toFixed(1) + "k";
    return a >= 10 || a === 0 ? v.toFixed(0) : v.toFixed(2);
  }

  /* Draw one chart: tables is a list of [label, t[], y[]]; series with other timestamps are aligned. */
  function draw(name, tables, unit, emptyText) {
    const section = root.querySelector(`.ops-chart[data-chart="${name}"]`);
    const box = section.querySelector(".plot");
    if (state.charts[name]) { state.charts[name].destroy(); delete state.charts[name]; }
    box.textContent = "";
    const withData = tables.filter(([, t]) => t.length);
    section.dataset.points = String(withData.reduce((n, [, t]) => n + t.length, 0));
    if (!withData.length) {
      const empty = document.createElement("div");
      empty.className = "empty";
      empty.textContent = emptyText || "no data in this range yet";
      box.appendChild(empty);
      return;
    }
    const data = withData.length === 1 ? [withData[0][1], withData[0][2]]
      : uPlot.join(withData.map(([, t, y]) => [t, y]));
    const series = [{}].concat(withData.map(([label], i) => ({
      label, stroke: PALETTE[i % PALETTE.length], width: 1.5, spanGaps: false,
      value: (u, v) => v == null ? "–" : fmt(v) + (unit || ""),
    })));
    const opts = { width: box.clientWidth || 400, height: 200, series, axes: axes(unit), legend: { live: true },
                   scales: { x: { time: true, range: [state.series.since, state.series.until] } },
                   tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), ZONE),
                   cursor: { sync: { key: "ops" } },  // one crosshair across every chart
                   hooks: { draw: [drawDeploys] } };
    const chart = state.charts[name] = new uPlot(opts, data, box);
    // the legend shows the latest point's values until the pointer is on a chart, and again after
    let last = data[0].length - 1;
    while (last > 0 && data.slice(1).every((ys) => ys[last] == null)) last -= 1;  // the latest point with a value
    const latest = () => setTimeout(() => { if (chart.cursor.idx == null) chart.setLegend({ idx: last }); }, 0);
    latest();  // after uPlot's own first pass, which empties the legend
    chart.over.addEventListener("mouseleave", latest);
    if (name === "latency") {  // a point leads to the slow requests kept for its time
      chart.over.addEventListener("click", () => {
        const i = chart.cursor.idx;
        if (i != null) loadSlowRequests(chart.data[0][i], state.series.step || 60).catch(console.error);
      });
      section.title = "click a point to list the slow requests of its time";
    }
  }

  /* A deploy is a vertical line where it finished: solid for one that went through, dashed for one
     rolled back or failed; the list under the charts says the same in words. */
  const DEPLOY_COLOURS = { succeeded: "#29a36a", running: "#7f7f7f" };
  function drawDeploys(u) {
    const deploys = (state.series && state.series.deploys) || [];
    const ctx = u.ctx;
    for (const d of deploys) {
      const x = Math.round(u.valToPos(d.at, "x", true));
      if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
      ctx.save();
      ctx.strokeStyle = DEPLOY_COLOURS[d.result] || "#d62728";
      ctx.lineWidth = 2 * devicePixelRatio;
      ctx.setLineDash(d.result === "succeeded" ? [] : [6 * devicePixelRatio, 4 * devicePixelRatio]);
      ctx.beginPath();
      ctx.moveTo(x, u.bbox.top);
      ctx.lineTo(x, u.bbox.top + u.bbox.height);
      ctx.stroke();
      ctx.restore();
    }
  }

  function listDeploys(deploys) {
    const list = document.getElementById("ops-deploys");
    if (!list) return;
    list.textContent = "";
    list.hidden = !deploys.length;
    for (const d of deploys) {
      const item = document.createElement("li");
      const when = new Date(d.at * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: ZONE });
      const what = d.kind === "rollback" ? `rollback to ${d.version}` : `deploy ${d.version}`;
      item.textContent = `${when} ${what} by ${d.by || "?"}: ${d.result.replace("_", " ")}` + (d.reason ? ` (${d.reason})` : "");
      item.className = `deploy-${d.result}`;
      list.appendChild(item);
    }
  }

  function bucketWords(seconds) {
    if (seconds % 3600 === 0) return seconds === 3600 ? "hour" : `${seconds / 3600} h`;
    return seconds === 60 ? "minute" : `${Math.round(seconds / 60)} min`;
  }

  function renderSeries(s) {
    state.series = s;
    listDeploys(s.deploys || []);
    const c = s.cluster;
    draw("request_rate", [["req/s", c.t, c.request_rate]]);
    draw("latency", [["p50", c.t, c.p50_ms], ["p95", c.t, c.p95_ms], ["p99", c.t, c.p99_ms]], " ms");
    draw("error_rate", [["errors", c.t, c.error_rate.map((v) => v == null ? null : v * 100)]], " %");
    const chosen = hosts();
    const boxes = root.querySelectorAll(".ops-host").length;
    for (const name of ["cpu_percent", "memory_percent", "disk_percent"]) {
      // with host boxes on the page, only the checked hosts are drawn (none checked: none)
      draw(name, Object.entries(s.hosts).filter(([host]) => !boxes || chosen.includes(host))
        .map(([host, h]) => [host, h.t, h[name]]), " %", boxes && !chosen.length ? "no host selected" : null);
    }
    draw("db_connections", [["connections", c.t, c.db_connections]], "", s.engine === "sqlite" ? "not available on SQLite" : null);
    draw("queue_depth", [["waiting", c.t, c.queue_depth], ["workers", c.t, c.workers]]);
    draw("sockets", [["sockets", c.t, c.sockets]]);
    const restaurants = Object.entries(s.restaurants);
    // say what a point counts: the orders (and revenue) of one bucket of the range
    const bucket = bucketWords(s.step || s.resolution || 60);
    root.querySelector('.ops-chart[data-chart="orders"] h2').textContent = `Orders per restaurant, per ${bucket}`;
    draw("orders", restaurants.map(([slug, r]) => [slug, r.t, r.orders]));
    drawRevenue(restaurants, bucket);
  }

  /* Revenue: one chart per currency, each with its currency on the axis and in the title (two
     currencies never share an axis); the first chart is the page's own, the others copies of it. */
  function drawRevenue(restaurants, bucket) {
    const first = root.querySelector('.ops-chart[data-chart="revenue"]');
    root.querySelectorAll(".ops-chart[data-revenue-copy]").forEach((section) => {
      const name = section.dataset.chart;
      if (state.charts[name]) { state.charts[name].destroy(); delete state.charts[name]; }
      section.remove();
    });
    const byCurrency = new Map();
    for (const [slug, r] of restaurants) {
      const currency = r.currency || "";
      if (!byCurrency.has(currency)) byCurrency.set(currency, []);
      byCurrency.get(currency).push([slug, r.t, r.revenue]);
    }
    if (!byCurrency.size) byCurrency.set("", []);
    let after = first;
    [...byCurrency.entries()].sort(([a], [b]) => a.localeCompare(b)).forEach(([currency, tables], i) => {
      let section = first;
      if (i > 0) {
        section = first.cloneNode(true);
        section.dataset.chart = `revenue-${i}`;
        section.dataset.revenueCopy = "1";
        section.removeAttribute("id");
        section.querySelector(".plot").textContent = "";
        after.after(section);
        after = section;
      }
      section.dataset.currency = currency;
      section.querySelector("h2").textContent = currency ? `Revenue in ${currency} per restaurant, per ${bucket}`
        : `Revenue per restaurant (no currency set), per ${bucket}`;
      draw(section.dataset.chart, tables, currency ? ` ${currency}` : "");
    });
  }

  async function getJSON(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
    return response.json();
  }

  const clock = (d) => d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23", timeZone: ZONE });

  /* A panel's state in words: loading, updated at, or failed (with what it still shows and a retry). */
  function panelStatus(id, panel, s, text, retry) {
    root.dataset[`${panel}State`] = s;
    const el = document.getElementById(id);
    el.dataset.state = s;
    el.textContent = text;
    if (retry) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "button";
      button.textContent = "Retry";
      button.addEventListener("click", retry);
      el.appendChild(button);
    }
  }

  function failed(id, panel, what, error, since, retry) {
    const shown = since ? `showing data from ${clock(since)}` : "nothing to show yet";
    panelStatus(id, panel, "error", `Could not load the ${what} (${error.message.split(": ").pop()}); ${shown}.`, retry);
  }

  const loaded = { series: null, tables: null };

  /* The range and the hosts live in the page's address, so a reload or a shared link shows the same. */
  function keepInAddress() {
    const params = new URLSearchParams({ range: state.range });
    const boxes = root.querySelectorAll(".ops-host");
    const chosen = hosts();
    if (boxes.length && chosen.length < boxes.length) {
      if (chosen.length) chosen.forEach((h) => params.append("host", h));
      else params.set("hosts", "none");
    }
    history.replaceState(null, "", `${location.pathname}?${params}`);
  }

  function readAddress() {
    const params = new URLSearchParams(location.search);
    const range = params.get("range");
    if (range && root.querySelector(`.ops-range[data-range="${CSS.escape(range)}"]`)) {
      state.range = range;
      root.querySelectorAll(".ops-range").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.range === range)));
    }
    const wanted = params.getAll("host");
    if (wanted.length || params.get("hosts") === "none") {
      root.querySelectorAll(".ops-host").forEach((box) => { box.checked = wanted.includes(box.value); });
    }
  }

  async function loadSeries() {
    keepInAddress();
    const params = new URLSearchParams({ range: state.range });
    hosts().forEach((h) => params.append("host", h));
    panelStatus("ops-charts-status", "series", "loading", "loading charts…");
    try {
      renderSeries(await getJSON(`${root.dataset.seriesUrl}?${params}`));
    } catch (error) {
      if (loaded.series) {  // the charts still show the last range that loaded: say so on its button
        state.range = loaded.series.range;
        root.querySelectorAll(".ops-range").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.range === state.range)));
        keepInAddress();
      }
      failed("ops-charts-status", "series", "charts", error, loaded.series && loaded.series.at, () => loadSeries().catch(console.error));
      throw error;
    }
    loaded.series = { range: state.range, at: new Date() };
    panelStatus("ops-charts-status", "series", "ok", `charts updated ${clock(loaded.series.at)}`);
  }

  function fillTable(id, rows, cells) {
    const body = document.querySelector(`#${id} tbody`);
    body.textContent = "";
    if (!rows.length) {
      const tr = body.insertRow();
      const td = tr.insertCell();
      td.colSpan = body.parentElement.tHead.rows[0].cells.length;
      td.className = "quiet";
      td.textContent = "nothing here";
      return;
    }
    for (const row of rows) {
      const tr = body.insertRow();
      for (const [value, cls] of cells(row)) {
        const td = tr.insertCell();
        if (cls) td.className = cls;
        if (cls === "link") {
          const a = document.createElement("a");
          a.textContent = value[0];
          a.href = value[1];
          td.appendChild(a);
        }
        else if (cls === "codelink") {  // a statement leading to its admin page (EXPLAIN, index advice)
          const a = document.createElement("a");
          a.href = value[1];
          const code = document.createElement("code");
          code.textContent = value[0].length > 160 ? value[0].slice(0, 157) + "…" : value[0];
          code.title = value[0];
          a.appendChild(code);
          td.appendChild(a);
        }
        else if (cls === "code") {
          const code = document.createElement("code");
          code.textContent = value.length > 160 ? value.slice(0, 157) + "…" : value;
          code.title = value;
          td.appendChild(code);
        }
        else td.textContent = value == null ? "–" : String(value);
      }
    }
  }

  const when = (iso) => iso ? new Date(iso).toLocaleString([], { dateStyle: "short", timeStyle: "medium", hourCycle: "h23", timeZone: ZONE }) : "–";
  const bytes = (n) => n == null ? "–" : fmt(n) + "B";

  const SORT_WORDS = { total: "total time", mean: "mean time", count: "count" };
  function showStatements() {
    const sort = state.sort || "total";
    document.getElementById("ops-slow-queries-title").textContent = `Heaviest statements (1 h), by ${SORT_WORDS[sort]}`;
    fillTable("ops-slow-queries", (state.statements || {})[sort] || [], (q) => [
      [[q.sql || q.fingerprint, `/admin/monitoring/queryfingerprint/?q=${encodeURIComponent(q.fingerprint)}`], "codelink"],
      [q.count, "num"], [q.mean_ms, "num"], [q.total_ms, "num"], [q.share_pct == null ? null : q.share_pct + " %", "num"]]);
  }
  root.querySelectorAll(".ops-sort").forEach((button) => button.addEventListener("click", () => {
    state.sort = button.dataset.sort;
    root.querySelectorAll(".ops-sort").forEach((b) => b.setAttribute("aria-pressed", String(b === button)));
    showStatements();
  }));

  async function loadTables() {
    panelStatus("ops-tables-status", "tables", "loading", "loading tables…");
    let t;
    try {
      t = await getJSON(root.dataset.tablesUrl);
    } catch (error) {
      failed("ops-tables-status", "tables", "tables", error, loaded.tables, () => loadTables().catch(console.error));
      throw error;
    }
    loaded.tables = new Date();
    panelStatus("ops-tables-status", "tables", "ok", `tables updated ${clock(loaded.tables)}`);
    state.statements = t.slow_queries;
    showStatements();
    fillTable("ops-n-plus-one", t.n_plus_one, (q) => [[q.route], [q.fingerprint, "code"], [q.requests, "num"]]);
    fillTable("ops-frontend-errors", t.frontend_errors, (e) => [[[`${e.type}: ${e.message}`, `/admin/monitoring/frontenderrorgroup/${e.id}/change/`], "link"], [e.screen], [e.count, "num"], [when(e.last_seen)]]);
    const pct = (v, digits) => v == null ? "–" : (v * 100).toFixed(digits == null ? 2 : digits) + " %";
    const burn = (b) => (b["1h"] == null ? "–" : b["1h"].toFixed(1) + "×") + " / " + (b["6h"] == null ? "–" : b["6h"].toFixed(1) + "×");
    fillTable("ops-service-levels", t.service_levels, (r) => [
      [[r.restaurant, `restaurants/${encodeURIComponent(r.restaurant)}/`], "link"],
      [`${pct(r.delivery.sli)} (objective ${pct(r.delivery.objective, 1)})`, "num"], [pct(r.delivery.budget_left, 0), "num"],
      [burn(r.delivery.burn), "num"],
      [`${pct(r.connected.sli, 3)} (objective ${pct(r.connected.objective, 1)})`, "num"], [pct(r.connected.budget_left, 0), "num"],
      [burn(r.connected.burn), "num"], [pct(r.acks.sli), "num"]]);
    showPitr(t.pitr);
    fillTable("ops-backups", t.backups, (b) => [[[String(b.id), `/admin/backups/backup/${b.id}/change/`], "link"], [b.status], [when(b.started_at)], [bytes(b.size_bytes), "num"], [when(b.verified_at)]]);
    fillTable("ops-task-runs", t.jobs, (r) => [[[r.job, `/admin/monitoring/taskrun/?job=${encodeURIComponent(r.job)}`], "link"], [when(r.last_started_at)], [r.last_status || "never run", `status-${r.last_status}`],
      [r.last_duration_ms == null ? null : Math.round(r.last_duration_ms), "num"], [when(r.next_run_at)], [r.runs_24h, "num"],
      [r.failed_24h, r.failed_24h ? "num status-failed" : "num"], [r.missed_24h, r.missed_24h ? "num status-missed" : "num"],
      [r.duplicate_24h, r.duplicate_24h ? "num status-duplicate" : "num"]]);
    fillTable("ops-alerts", t.alerts, (a) => [[a.held ? `${a.state} (held)` : a.state, `state-${a.state}`], [a.severity],
      [[a.rule, `/admin/monitoring/alert/${a.id}/change/`], "link"],
      [Object.entries(a.labels).map(([k, v]) => `${k}=${v}`).join(", ")], [a.value == null ? "–" : fmt(a.value), "num"], [when(a.since)]]);
    fillTable("ops-cache", Object.entries(t.cache), ([ns, c]) => [[ns], [c.hits, "num"], [c.misses, "num"],
      [c.ratio == null ? "–" : (c.ratio * 100).toFixed(1) + " %", "num"]]);
  }

  /* The slow requests kept for [start, start + step): by default the last hour. */
  async function loadSlowRequests(start, step) {
    const from = start == null ? new Date(Date.now() - 3600 * 1000) : new Date(start * 1000);
    const minutes = start == null ? 60 : Math.min(1440, Math.max(1, Math.ceil(step / 60)));
    const params = new URLSearchParams({ start: from.toISOString(), minutes: String(minutes) });
    const found = await getJSON(`${root.dataset.slowUrl}?${params}`);
    const title = document.getElementById("ops-slow-requests-title");
    title.textContent = start == null ? "Slow requests (last hour; click the latency chart for a point's own)"
      : `Slow requests ${clock(from)} + ${minutes} min`;
    fillTable("ops-slow-requests", found.requests, (r) => [[when(r.at)], [r.route], [r.status, "num"],
      [r.ms.toFixed(0), "num"], [r.queries, "num"], [[r.request_id, r.admin_url], "link"]]);
  }

  /* Point-in-time recovery in one line: how far a restore reaches now, the archiver, the last drill. */
  function showPitr(p) {
    const el = document.getElementById("ops-pitr");
    if (!el || !p) return;
    if (!p.available) { el.textContent = `Point in time: ${p.why}.`; return; }
    if (!p.bases) { el.textContent = "Point in time: no base backup yet (manage.py backup --base)."; el.dataset.state = "warn"; return; }
    const parts = [`Point in time: restorable to ${p.restorable_to ? when(p.restorable_to) : "–"}`];
    parts.push(p.archiver === "streaming" ? `archiver streaming, lag ${p.archive_lag_s.toFixed(1)} s`
      : p.archiver === "down" ? "archiver DOWN" : "no archiver slot");
    if (p.gaps) parts.push(`${p.gaps} segments missing`);
    const d = p.last_drill;
    parts.push(d ? `last drill ${d.status} ${when(d.at)}${d.rto_s == null ? "" : `, restored in ${d.rto_s.toFixed(1)} s`}` : "no restore drill yet");
    el.textContent = parts.join(" · ") + ".";
    el.dataset.state = p.gaps || p.archiver === "down" || (d && d.status === "failed") ? "bad" : "ok";
  }

  function applyFigures(data) {
    state.frames += 1;
    state.lastFrame = data;
    for (const tile of data.tiles || []) {
      const el = root.querySelector(`.ops-tile[data-tile="${tile.key}"]`);
      if (!el) continue;
      el.dataset.state = tile.state;
      el.querySelector(".value").textContent = tile.value;
      el.querySelector(".state").textContent = tile.state_text;
    }
  }

  function applyOrders(counts) {
    const rows = Object.entries(counts).sort((a, b) => b[1] - a[1]);
    fillTable("ops-orders", rows, ([slug, n]) => [[[slug, `restaurants/${encodeURIComponent(slug)}/`], "link"], [n, "num"]]);
    root.dataset.ordersTotal = String(rows.reduce((n, [, v]) => n + v, 0));
  }

  function setLive(s, text) {
    const el = document.getElementById("ops-live-state");
    el.dataset.state = s;
    el.textContent = text;
    root.dataset.liveState = s;
  }

  let retryTimer = null;
  let lostAt = null;
  function connect(attempt) {
    retryTimer = null;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}${root.dataset.wsPath}`);
    state.socket = socket;
    socket.onopen = () => { attempt = 0; lostAt = null; setLive("live", "live"); };
    socket.onmessage = (message) => {
      const frame = JSON.parse(message.data);
      if (frame.type === "metrics") applyFigures(frame.data);
      else if (frame.type === "orders") applyOrders(frame.data);
      else if (frame.type === "backup.finished" || frame.type.startsWith("alert.")) {
        state.events.push(frame);
        loadTables().catch(console.error);
      }
    };
    socket.onclose = (event) => {
      if (event.code === 4401 || event.code === 4403) { setLive("lost", "not allowed: log in again"); return; }
      lostAt = lostAt || new Date();
      setLive("lost", `stale since ${clock(lostAt)}: reconnecting…`);
      // jittered backoff capped near 10 s; back in view or online: at once
      const delay = Math.min(8000, 500 * 2 ** attempt) * (0.5 + Math.random() * 0.75);
      retryTimer = setTimeout(() => connect(attempt + 1), delay);
    };
  }

  function reconnectNow() {
    if (retryTimer === null || document.visibilityState === "hidden") return;
    clearTimeout(retryTimer);
    connect(0);
  }
  document.addEventListener("visibilitychange", reconnectNow);
  window.addEventListener("online", reconnectNow);

  function refresh() {
    loadSeries().catch((e) => console.error(e));
    loadTables().catch((e) => console.error(e));
    loadSlowRequests(null).catch((e) => console.error(e));
  }

  root.querySelectorAll(".ops-range").forEach((button) => button.addEventListener("click", () => {
    state.range = button.dataset.range;
    root.querySelectorAll(".ops-range").forEach((b) => b.setAttribute("aria-pressed", String(b === button)));
    loadSeries().catch(console.error);
  }));
  root.querySelectorAll(".ops-host").forEach((box) => box.addEventListener("change", () => loadSeries().catch(console.error)));
  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => state.series && renderSeries(state.series), 200);
  });
  const theme = new MutationObserver(() => state.series && renderSeries(state.series));
  theme.observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });

  readAddress();
  getJSON(root.dataset.liveUrl).then((d) => { applyFigures(d); applyOrders(d.orders_by_restaurant); }).catch(console.error);
  refresh();
  setInterval(refresh, REFRESH_MS);
  connect(0);
})();
