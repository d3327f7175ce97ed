// The feed benches' till: order events posted to the ingest API at a steady rate from one
// Node.js process (keep-alive connections, at most 32 at once), each stamped with the moment it
// was sent (`data.t`, epoch seconds) so the listener can time it to the board. Cheap per request,
// so the machine's cores go to the servers and the figure is theirs.
//
//   node bench/order_sender.mjs BASE_URL
//
// Reads one JSON line on stdin: {"tenants": [[slug, token], ...], "rate": R, "seconds": S,
// "warmup_s": W}. Sends W seconds of warm-up orders first (marked `data.warmup`, which the
// listener does not count), then R*S measured ones, order n to tenants[n % len]; order ids are
// "slug:n". Prints one JSON line: {"sent": N, "statuses": {code: count}, "http_ms": [...],
// "achieved_rate": measured orders per second, "cpu_s": its own CPU time, "wall_s"}.
import http from "node:http";
import { createInterface } from "node:readline";

const base = new URL(process.argv[2]);
const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
const now = () => performance.timeOrigin + performance.now();

function post(token, body) {
  return new Promise((resolve) => {
    const payload = JSON.stringify(body);
    const started = performance.now();
    const request = http.request(
      {
        agent, host: base.hostname, port: base.port, path: "/api/v1/orders/events", method: "POST",
        headers: { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(payload),
                   Authorization: `Bearer ${token}` },
      },
      (response) => {
        response.resume();
        response.on("end", () => resolve([response.statusCode, performance.now() - started]));
      },
    );
    request.on("error", () => resolve([0, performance.now() - started]));
    request.end(payload);
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

async function steady(tenants, rate, count, first, warmup, record) {
  const started = performance.now();
  const pending = [];
  for (let i = 0; i < count; i += 1) {
    const due = started + (i * 1000) / rate;
    if (due > performance.now()) await sleep(due - performance.now());
    const n = first + i;
    const [slug, token] = tenants[n % tenants.length];
    const body = { type: "order.created", order_id: `${slug}:${n}`, total_amount: "9.50", items_count: 1,
                   data: warmup ? { t: now() / 1000, warmup: true } : { t: now() / 1000 } };
    pending.push(post(token, body).then(record));
  }
  await Promise.all(pending);
  return count / ((performance.now() - started) / 1000);
}

createInterface({ input: process.stdin }).once("line", async (line) => {
  const { tenants, rate, seconds, warmup_s: warmupS } = JSON.parse(line);
  const cpuAtStart = process.cpuUsage();
  const startedAt = now();
  const statuses = {};
  const httpMs = [];
  const warmup = Math.round(rate * (warmupS || 0));
  await steady(tenants, rate, warmup, 1_000_000, true, () => {});
  const achieved = await steady(tenants, rate, Math.round(rate * seconds), 0, false, ([status, ms]) => {
    statuses[status] = (statuses[status] || 0) + 1;
    httpMs.push(ms);
  });
  const cpu = process.cpuUsage(cpuAtStart);
  const out = { sent: httpMs.length, statuses, http_ms: httpMs, achieved_rate: achieved,
                cpu_s: (cpu.user + cpu.system) / 1e6, wall_s: (now() - startedAt) / 1000 };
  process.stdout.write(JSON.stringify(out) + "\n", () => process.exit(0));
});
