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
  const tbody = document.getElementById("open-orders");
  const finishedBody = document.getElementById("finished-orders");
  const finishedCount = document.getElementById("finished-count");
  const olderButton = document.getElementById("show-older");
  const restaurantCurrency = board.dataset.currency || "";
  const finishedVisibleMs = parseFloat(board.dataset.finishedVisibleS || "600") * 1000;
  const FINISHED = ["paid", "completed", "cancelled"];
  const indicator = document.getElementById("connection");
  const counter = document.getElementById("order-count");

  const lastUpdate = document.getElementById("last-update");
  const retryButton = document.getElementById("retry-now");
  let updatedAt = new Date();  // the page was rendered with the orders up to now
  // every time on the board in the restaurant's own zone, one 24-hour format, whatever the browser's
  const zone = board.dataset.tz || undefined;
  const hhmmss = function (d) { return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23", timeZone: zone }); };
  const hhmm = function (d) { return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: zone }); };

  function setState(state, text) {
    indicator.className = "conn conn-" + state;
    indicator.textContent = text;
    // while not live, say how old what is shown is, and offer to try at once
    lastUpdate.textContent = state === "live" ? "" : "last update " + hhmmss(updatedAt);
    retryButton.hidden = state !== "offline";
  }

  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }

  function timeCell(iso) {
    const td = document.createElement("td");
    const time = document.createElement("time");
    time.dateTime = iso;
    time.textContent = hhmm(new Date(iso));
    td.appendChild(time);
    return td;
  }

  function apply(ev) {
    if (ev.seq <= seq) return;
    seq = ev.seq;
    // a failed payment is said as such, not as a plain update: staff have to act on it
    const failedPayment = ev.type === "order.updated" && ev.data && ev.data.payment_status === "failed";
    const status = failedPayment ? "payment-failed" : ev.type.split(".")[1];
    let row = board.querySelector('#orders tr[data-order="' + CSS.escape(ev.order_id) + '"]');
    const fresh = !row;
    if (!row) {
      row = document.createElement("tr");
      row.dataset.order = ev.order_id;
      counter.textContent = String(parseInt(counter.textContent, 10) + 1);
    }
    // open orders on top, newest first; a finished one moves to the top of the finished list
    const finished = FINISHED.indexOf(status) >= 0;
    if (finished && (fresh || !row.dataset.finished)) {
      row.dataset.finished = ev.occurred_at;
      finishedBody.prepend(row);
    } else if (!finished && (fresh || row.dataset.finished)) {
      delete row.dataset.finished;
      tbody.prepend(row);
    }
    // A later event may leave out what an earlier one said (a payment names no table); an
    // amount always carries a currency, the restaurant's when the events name none.
    const table = ev.table || row.dataset.table || "";
    const currency = ev.currency || row.dataset.currency || restaurantCurrency;
    row.dataset.table = table;
    row.dataset.currency = currency;
    if (!row.dataset.opened) row.dataset.opened = ev.occurred_at;  // the order's first event
    row.replaceChildren(
      cell(ev.order_id), cell(failedPayment ? "payment failed" : status, "status"), cell(table), cell(String(ev.items_count)),
      cell(currency ? ev.total_amount + " " + currency : ev.total_amount),
      timeCell(ev.occurred_at),
      cell("", "age")
    );
    row.dataset.seq = String(ev.seq);
    row.className = "status-" + status + (fresh ? " fresh" : "");
    tickRow(row, Date.now());
  }

  // Ticket times: how long each open order has been open, and whether it is past the
  // restaurant's expected time plus its late or very-late threshold (said in words, not only colour).
  const expectedS = parseInt(board.dataset.ticketExpected, 10);
  const lateS = parseInt(board.dataset.ticketLate, 10);
  const veryLateS = parseInt(board.dataset.ticketVeryLate, 10);
  const OPEN = ["status-created", "status-updated", "status-payment-failed"];

  function tickRow(row, now) {
    const ageCell = row.querySelector("td.age");
    if (!ageCell) return;
    const open = OPEN.some(function (cls) { return row.classList.contains(cls); });
    row.classList.remove("ticket-late", "ticket-very-late");
    if (!open || !row.dataset.opened) { ageCell.textContent = ""; return; }
    const ageS = Math.max(0, Math.floor((now - Date.parse(row.dataset.opened)) / 1000));
    const minutes = Math.floor(ageS / 60);
    let text = minutes + ":" + String(ageS % 60).padStart(2, "0");
    const over = ageS - expectedS;
    if (over > veryLateS) { row.classList.add("ticket-very-late"); text += " very late"; }
    else if (over > lateS) { row.classList.add("ticket-late"); text += " late"; }
    ageCell.textContent = text;
  }

  // finished orders stay in view for a while, then fold into "show older"
  function foldFinished(now) {
    let older = 0;
    finishedBody.querySelectorAll("tr").forEach(function (row) {
      const old = now - Date.parse(row.dataset.finished) > finishedVisibleMs;
      row.classList.toggle("older", old);
      if (old) older += 1;
    });
    finishedCount.textContent = String(finishedBody.rows.length);
    olderButton.hidden = older === 0;
    const shown = board.classList.contains("show-older");
    olderButton.textContent = (shown ? "hide " : "show ") + older + " older";
    olderButton.setAttribute("aria-expanded", String(shown));
  }
  olderButton.addEventListener("click", function () {
    board.classList.toggle("show-older");
    foldFinished(Date.now());
  });

  function tick() {
    const now = Date.now();
    tbody.querySelectorAll("tr").forEach(function (row) { tickRow(row, now); });
    finishedBody.querySelectorAll("tr").forEach(function (row) { tickRow(row, now); });
    foldFinished(now);
  }
  tick();
  window.setInterval(tick, 1000);

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

  let retryTimer = null;
  let ackEvery = 0;
  function connect() {
    retryTimer = null;
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    const url = scheme + "://" + window.location.host + "/ws/restaurants/" + encodeURIComponent(slug) +
      "/orders/?last_seq=" + seq + "&epoch=" + encodeURIComponent(epoch) + "&batch=1";
    setState("connecting", "connecting…");
    socket = new WebSocket(url);
    socket.onmessage = function (message) {
      const frame = JSON.parse(message.data);
      updatedAt = new Date();
      if (frame.type === "hello") {
        attempts = 0;
        ackEvery = frame.ack_every || 0;
        if (frame.epoch !== epoch) { window.location.reload(); return; }
        // a gap the socket does not replay is fetched page by page after the reset that follows
        setState("live", frame.gap ? "live, fetching " + (frame.gap.to - frame.gap.from + 1) + " missed orders…" : "live");
      } else if (frame.type === "reset") {
        catchUp(frame.epoch).then(function () { setState("live", "live"); }).catch(function () { socket.close(); });
      } else if (frame.type === "ping") {
        socket.send('{"type":"pong"}');
      } else if (frame.type === "events") {
        frame.frames.forEach(apply);  // a page of a replay
      } else if (frame.type && frame.type.indexOf("order.") === 0) {
        apply(frame);
        // the server times these from the order's commit: its delivery time as this board sees it
        if (ackEvery && frame.seq % ackEvery === 0) socket.send(JSON.stringify({ type: "ack", seq: frame.seq }));
      }
    };
    socket.onclose = function (event) {
      if (event.code === 4401) { window.location.href = "/accounts/login/?next=" + encodeURIComponent(window.location.pathname); return; }
      if (event.code === 4403) { setState("offline", "access removed"); return; }
      attempts += 1;
      // jittered exponential backoff, capped near 10 s, so a restarted server is not met by
      // every board at once and no board waits long after it is back
      const base = Math.min(8000, 250 * Math.pow(2, attempts - 1));
      const delay = base * (0.5 + Math.random() * 0.75);
      setState("offline", "offline, retrying…");
      retryTimer = window.setTimeout(connect, delay);
    };
  }

  // back in view or back on the network: try now rather than at the end of the backoff
  function retryNow() {
    if (retryTimer === null || document.visibilityState === "hidden") return;
    window.clearTimeout(retryTimer);
    retryTimer = null;
    connect();
  }
  document.addEventListener("visibilitychange", retryNow);
  window.addEventListener("online", retryNow);
  retryButton.addEventListener("click", retryNow);

  connect();
})();
