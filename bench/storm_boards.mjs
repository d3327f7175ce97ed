// A fleet of staff boards for the reconnect-storm runs (bench/storm.py): each follows one
// restaurant's feed as the board page does (replays as one message per page with ?batch=1,
// pong to every ping) and, when its socket drops, reconnects with jittered exponential backoff
// (0.25 s doubling to 2 s, times 0.5 to 1.5) and resumes from its last seq. In Node.js (the
// `ws` library) so that a thousand boards cost the shared machine little.
//
//   node bench/storm_boards.mjs URL BOARDS COOKIE ORIGIN SEED
//
// Prints {"connected": true} once every board has its first hello. Then reads one line on
// stdin, {"last": N, "settle_s": S}: waits until every board has seq N (at most S seconds),
// stops, and prints {"boards": [per board {"lost", "duplicated", "out_of_order", "resets",
// "hellos": [[epoch_ms, resumed], ...]}, against every seq after its first hello up to N],
// "cpu_s": the fleet's own CPU time}.
import { createInterface } from "node:readline";
import { WebSocket } from "ws";

const [url, boardsArg, cookie, origin, seedArg] = process.argv.slice(2);
const BACKOFF_BASE_S = 0.25;
const BACKOFF_CAP_S = 2.0;
const wallMs = () => performance.timeOrigin + performance.now();

function random(seed) {
  // mulberry32: a small seeded generator, so a run's jitter can be repeated
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Board {
  constructor(rng, onFirstHello) {
    this.rng = rng;
    this.onFirstHello = onFirstHello;
    this.lastSeq = null;
    this.firstSeq = null;
    this.epoch = "";
    this.seqs = [];
    this.hellos = [];
    this.resets = 0;
    this.attempt = 0;
    this.stopping = false;
    this.ws = null;
  }

  connect() {
    if (this.stopping) return;
    const query = this.lastSeq === null ? "" : `?batch=1&last_seq=${this.lastSeq}&epoch=${this.epoch}`;
    const ws = new WebSocket(url + query, { headers: { Cookie: cookie }, origin, perMessageDeflate: false,
                                            handshakeTimeout: 10_000 });
    this.ws = ws;
    ws.on("message", (data) => this.receive(ws, JSON.parse(data)));
    ws.on("error", () => {});
    ws.on("close", () => {
      if (this.stopping) return;
      this.attempt += 1;
      const delay = Math.min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (this.attempt - 1)) * (0.5 + this.rng());
      setTimeout(() => this.connect(), delay * 1000);
    });
  }

  receive(ws, frame) {
    const kind = frame.type ?? "";
    if (kind === "hello") {
      this.attempt = 0;
      this.hellos.push([wallMs(), frame.resumed === true]);
      if (this.lastSeq === null) {
        this.lastSeq = this.firstSeq = frame.seq;
        this.epoch = frame.epoch;
        this.onFirstHello();
      }
    } else if (kind.startsWith("order.")) {
      this.seqs.push(frame.seq);
      this.lastSeq = frame.seq;
    } else if (kind === "events") {
      for (const event of frame.frames) this.seqs.push(event.seq);
      this.lastSeq = frame.frames[frame.frames.length - 1].seq;
    } else if (kind === "ping") {
      ws.send('{"type":"pong"}');
    } else if (kind === "reset") {
      this.resets += 1;
    }
  }

  summary(last) {
    const seen = new Set(this.seqs);
    let lost = 0;
    for (let seq = this.firstSeq + 1; seq <= last; seq += 1) if (!seen.has(seq)) lost += 1;
    let outOfOrder = 0;
    for (let i = 1; i < this.seqs.length; i += 1) if (this.seqs[i] <= this.seqs[i - 1]) outOfOrder += 1;
    return { lost, duplicated: this.seqs.length - seen.size, out_of_order: outOfOrder, resets: this.resets,
             hellos: this.hellos };
  }
}

const count = Number(boardsArg);
const rng = random(Number(seedArg));
let connected = 0;
const fleet = Array.from({ length: count }, () => new Board(random(Math.floor(rng() * 2 ** 32)), () => {
  connected += 1;
  if (connected === count) process.stdout.write(JSON.stringify({ connected: true }) + "\n");
}));
for (const board of fleet) board.connect();

const lines = createInterface({ input: process.stdin });
lines.once("line", (line) => {
  const { last, settle_s: settleS } = JSON.parse(line);
  const deadline = Date.now() + settleS * 1000;
  const check = () => {
    if (Date.now() < deadline && fleet.some((b) => (b.lastSeq ?? 0) < last)) {
      setTimeout(check, 100);
      return;
    }
    for (const board of fleet) {
      board.stopping = true;
      board.ws?.terminate();
    }
    const cpu = process.cpuUsage();
    const out = JSON.stringify({ boards: fleet.map((b) => b.summary(last)), cpu_s: (cpu.user + cpu.system) / 1e6 });
    process.stdout.write(out + "\n", () => process.exit(0));
  };
  check();
});
