// The feed benches' measuring client: N staff sockets in one Node.js process (the `ws` library,
// no compression offered), spread round-robin over the given restaurants, each answering pings
// as the board does, timing every order frame from the `data.t` its publisher stamped (epoch
// seconds) to the moment the frame is handed to the client (but for warm-up orders, marked
// `data.warmup`), and counting any frame of another restaurant than the socket's own. A client apart from the servers, in another runtime, and
// cheap per frame, so that the figure is the server's.
//
//   node bench/feed_listener.mjs URL_TEMPLATE SLUGS SOCKETS COOKIE ORIGIN
//
// URL_TEMPLATE holds "{slug}"; SLUGS is a comma-separated list. Prints "ready" once every
// socket has its hello, then reads one line on stdin, {"expected": N, "settle_s": S}: waits
// until N order frames arrived (at most S seconds) and prints one JSON line: {"samples":
// [[order_id, latency_ms], ...] (in arrival order), "cross_tenant": N, "cpu_s": its own CPU time
// since "ready", "wall_s": the time since "ready"}.
import { createInterface } from "node:readline";
import { WebSocket } from "ws";

const [template, slugsArg, socketsArg, cookie, origin] = process.argv.slice(2);
const slugs = slugsArg.split(",");
const sockets = Number(socketsArg);
const samples = [];
let crossTenant = 0;
let cpuAtReady = null;
let readyAt = 0;
const now = () => performance.timeOrigin + performance.now();

function open(slug) {
  return new Promise((resolve, reject) => {
    const url = template.replace("{slug}", slug);
    const ws = new WebSocket(url, { headers: { Cookie: cookie }, origin, perMessageDeflate: false });
    let hello = false;
    ws.on("message", (data) => {
      const at = now();
      const frame = JSON.parse(data);
      if (!hello) {
        hello = frame.type === "hello";
        return hello ? resolve(ws) : reject(new Error(`expected hello, got ${data}`));
      }
      if (frame.type === "ping") {
        ws.send('{"type":"pong"}');
      } else if (typeof frame.type === "string" && frame.type.startsWith("order.")) {
        if (frame.data.warmup) return; // the till's warm-up orders are not measured
        samples.push([frame.order_id, at - frame.data.t * 1000]);
        if (frame.restaurant !== slug) crossTenant += 1;
      }
    });
    ws.on("error", reject);
  });
}

let next = 0;
async function opener() {
  while (next < sockets) {
    const slug = slugs[next % slugs.length];
    next += 1;
    await open(slug);
  }
}
try {
  await Promise.all(Array.from({ length: 50 }, opener)); // 50 handshakes at a time
} catch (error) {
  process.stderr.write(`could not open the sockets: ${error.message}\n`);
  process.exit(1);
}
cpuAtReady = process.cpuUsage();
readyAt = now();
process.stdout.write("ready\n");

createInterface({ input: process.stdin }).once("line", (line) => {
  const { expected, settle_s: settleS } = JSON.parse(line);
  const deadline = Date.now() + settleS * 1000;
  const check = () => {
    if (samples.length < expected && Date.now() < deadline) {
      setTimeout(check, 20);
      return;
    }
    const cpu = process.cpuUsage(cpuAtReady);
    const out = { samples, cross_tenant: crossTenant, cpu_s: (cpu.user + cpu.system) / 1e6,
                  wall_s: (now() - readyAt) / 1000 };
    process.stdout.write(JSON.stringify(out) + "\n", () => process.exit(0));
  };
  check();
});
