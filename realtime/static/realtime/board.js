// The live order board: applies each event once, in seq order, and resumes after reconnects.
(function () {
  "use strict";
  const board = document.getElementById("board");
  const slug = board.dataset.slug;
  const catchUpUrl = board.dataset.catchUpUrl;
  let seq = parseInt(board.dataset.seq, 10);
  let epoch = board.dataset.epoch;
  let attempts = 0;
  let socket = null;
  const tbody = document.querySelector("#orders tbody");
  const indicator = document.getElementById("connection");
  const counter = document.getElementById("order-count");

  function setState(state, text) {
    indicator.className = "conn conn-" + state;
    indicator.textContent = text;
  }

  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }

  function apply(ev) {
    if (ev.seq <= seq) return;
    seq = ev.seq;
    const status = ev.type.split(".")[1];
    let row = tbody.querySelector('tr[data-order="' + CSS.escape(ev.order_id) + '"]');
    const fresh = !row;
    if (!row) {
      row = document.createElement("tr");
      row.dataset.order = ev.order_id;
      tbody.prepend(row);
      counter.textContent = String(parseInt(counter.textContent, 10) + 1);
    }
    // A later event may leave out what an earlier one said (a payment names no table).
    const table = ev.table || row.dataset.table || "";
    const currency = ev.currency || row.dataset.currency || "";
    row.dataset.table = table;
    row.dataset.currency = currency;
    row.replaceChildren(
      cell(ev.order_id), cell(status, "status"), cell(table), cell(String(ev.items_count)),
      cell(ev.total_amount + " " + currency),
      cell(new Date(ev.occurred_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }))
    );
    row.dataset.seq = String(ev.seq);
    row.className = "status-" + status + (fresh ? " fresh" : "");
  }

  async function catchUp(targetEpoch) {
    if (targetEpoch !== epoch) { window.location.reload(); return; }
    let more = true;
    while (more) {
      const response = await fetch(catchUpUrl + "?after_seq=" + seq + "&limit=1000", { credentials: "same-origin" });
      if (!response.ok) throw new Error("catch-up failed: " + response.status);
      const page = await response.json();
      page.events.forEach(apply);
      more = page.has_more && page.events.length > 0;
    }
  }

  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    const url = scheme + "://" + window.location.host + "/ws/restaurants/" + encodeURIComponent(slug) +
      "/orders/?last_seq=" + seq + "&epoch=" + encodeURIComponent(epoch);
    setState("connecting", "connecting…");
    socket = new WebSocket(url);
    socket.onmessage = function (message) {
      const frame = JSON.parse(message.data);
      if (frame.type === "hello") {
        attempts = 0;
        if (frame.epoch !== epoch) { window.location.reload(); return; }
        // a gap the socket does not replay is fetched page by page after the reset that follows
        setState("live", frame.gap ? "live, fetching " + (frame.gap.to - frame.gap.from + 1) + " missed orders…" : "live");
      } else if (frame.type === "reset") {
        catchUp(frame.epoch).then(function () { setState("live", "live"); }).catch(function () { socket.close(); });
      } else if (frame.type === "ping") {
        socket.send('{"type":"pong"}');
      } else if (frame.type && frame.type.indexOf("order.") === 0) {
        apply(frame);
      }
    };
    socket.onclose = function (event) {
      if (event.code === 4401) { window.location.href = "/accounts/login/?next=" + encodeURIComponent(window.location.pathname); return; }
      if (event.code === 4403) { setState("offline", "access removed"); return; }
      attempts += 1;
      const base = Math.min(30000, 500 * Math.pow(2, attempts));
      const delay = base * (0.5 + Math.random());
      setState("offline", "offline, retrying…");
      window.setTimeout(connect, delay);
    };
  }

  connect();
})();
