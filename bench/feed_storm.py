"""A reconnect storm: 1,000 boards of one restaurant on the socket tier (uvicorn, two workers
as the compose layout runs it; --ws-workers 1 for one process), a till sending orders through
gunicorn, the socket tier killed with SIGKILL (its whole process group, as a crashed container
goes) and started again. Every board reconnects with jittered backoff (0.25 s doubling to 2 s)
and resumes from its last seq; the boards are a Node.js fleet (storm_boards.mjs).

Printed: lost, duplicated and out-of-order orders over every board; how long after the process
was ready again the last board had resumed; and, side by side with the normal period before the
kill, the ingest API's p99 and the database's p99 (a probe reading the restaurant's newest
events every 20 ms, from a process of its own) during the storm; the resume reads the restarted process answered and the
queries it needed; the clients' own CPU share (the boards' fleet and this script's till).

    .venv/bin/python bench/feed_storm.py [--boards 1000] [--rate 50] [--down 2] [--ws-workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import httpx
from _support import (
    BENCH_DB,
    PG,
    ROOT,
    bench_env,
    free_port,
    fresh_database,
    gunicorn,
    http_origin,
    percentile,
    server,
    session_cookie,
    uvicorn,
)  # fmt: skip
from storm import run_storm

PROBE = """
import json, sys, threading, time
import psycopg
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
samples = []
with psycopg.connect(sys.argv[1], autocommit=True) as conn:
    while not stop.is_set():
        started = time.monotonic()
        conn.execute("SELECT seq, type FROM realtime_orderevent WHERE restaurant_id = %s ORDER BY seq DESC LIMIT 50",
                     (int(sys.argv[2]),)).fetchall()
        samples.append((started, time.monotonic() - started))
        time.sleep(0.02)
print(json.dumps(samples))
"""


class DbProbe:
    """Reads the restaurant's newest events every 20 ms from a process of its own (so that what it
    times is the database as a client sees it, not this script's till sharing its interpreter);
    keeps (time, seconds) per read, on the machine's monotonic clock."""

    def __init__(self, restaurant_id: int) -> None:
        self.restaurant_id = restaurant_id
        self.samples: list[tuple[float, float]] = []
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", PROBE, f"{PG}/{BENCH_DB}", str(self.restaurant_id)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip

    def stop(self) -> None:
        if self.process is not None:
            out, _ = self.process.communicate(timeout=30)
            self.samples = [(t, s) for t, s in json.loads(out)]

    def p99_ms(self, since: float, until: float) -> float:
        return percentile([s for t, s in self.samples if since <= t <= until], 99) * 1000


def metric(text: str, name: str, kind: str) -> float:
    for line in text.splitlines():
        if line.startswith(f'{name}{{kind="{kind}"}} '):
            return float(line.split()[-1])
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--boards", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50, help="orders per second from the till")
    parser.add_argument("--down", type=float, default=2.0, help="seconds the socket process stays dead")
    parser.add_argument("--ws-workers", type=int, default=2, help="uvicorn workers of the socket tier")
    args = parser.parse_args()
    fresh_database()
    from realtime.services import restaurant_create, staff_add

    restaurant, token = restaurant_create(slug="storm", name="Storm")
    staff_add(slug="storm", username="bench-staff")  # the boards' user: staff of the restaurant, no superuser
    cookie = session_cookie("bench-staff")
    ws_port, http_port = free_port(), free_port()
    env = bench_env()
    log = open("/tmp/opsite-bench-storm-ws.log", "ab")  # noqa: SIM115
    state: dict[str, subprocess.Popen[bytes]] = {}

    def start_ws() -> None:
        state["ws"] = subprocess.Popen(uvicorn(ws_port, workers=args.ws_workers), cwd=ROOT, env=env, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{ws_port}/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("the socket process never became ready")

    async def kill() -> None:
        os.killpg(state["ws"].pid, signal.SIGKILL)  # the master and its workers at once
        await asyncio.to_thread(state["ws"].wait)
        await asyncio.sleep(args.down)

    async def restart() -> None:
        await asyncio.to_thread(start_ws)

    probe = DbProbe(restaurant.pk)
    start_ws()
    cpu_before = os.times()
    wall_before = time.monotonic()
    try:
        with server(gunicorn(http_port, workers=2), port=http_port, env=env) as ingest_base:
            probe.start()
            ws_url = f"ws://127.0.0.1:{ws_port}/ws/restaurants/{restaurant.slug}/orders/"
            result = asyncio.run(run_storm(ws_url=ws_url, origin=http_origin(ws_url), cookie=cookie,
                                           ingest_base=ingest_base, token=token, boards=args.boards, rate=args.rate,
                                           kill=kill, restart=restart, before_s=5, after_s=3,
                                           settle_timeout_s=120))  # fmt: skip
            page = httpx.get(f"http://127.0.0.1:{ws_port}/metrics").text
    finally:
        probe.stop()
        os.killpg(state["ws"].pid, signal.SIGTERM)
        state["ws"].wait(15)
    cpu = os.times()
    client_cpu = (cpu.user - cpu_before.user + cpu.system - cpu_before.system) / (time.monotonic() - wall_before)
    # the storm window as the probe saw it: the newest 10 % of the run after the normal period's end
    samples = probe.samples
    normal_end = samples[0][0] + 5 if samples else 0.0
    normal_db = probe.p99_ms(samples[0][0], normal_end) if samples else float("nan")
    storm_db = probe.p99_ms(normal_end + 0.5, normal_end + args.down + 0.5 + result.resumed_within_s + 3)
    print(f"reconnect storm: {args.boards} boards of one restaurant, uvicorn x{args.ws_workers} killed (SIGKILL) "
          f"for {args.down:g} s, till at {args.rate:g} orders/s through gunicorn x2")  # fmt: skip
    print(f"  orders {result.orders}; lost {result.lost}, duplicated {result.duplicated}, "
          f"out of order {result.out_of_order}, resets {result.resets}, not resumed {result.not_resumed}")  # fmt: skip
    print(f"  every board resumed {result.resumed_within_s:.2f} s after the process was ready (target 5 s); "
          f"the median board {result.resumed_median_s:.2f} s")  # fmt: skip
    print(f"  ingest p99: normal {result.ingest_p99_normal_ms or float('nan'):.1f} ms, storm "
          f"{result.ingest_p99_storm_ms or float('nan'):.1f} ms, ratio "
          f"{(result.ingest_p99_storm_ms or 0) / (result.ingest_p99_normal_ms or 1):.2f} (target at most 2)")  # fmt: skip
    print(f"  database p99 (probe): normal {normal_db:.2f} ms, storm {storm_db:.2f} ms, ratio "
          f"{storm_db / normal_db:.2f} (target at most 2)")  # fmt: skip
    print(f"  resume reads after the restart: head {metric(page, 'opsite_feed_resume_reads_total', 'head'):.0f} -> "
          f"{metric(page, 'opsite_feed_resume_queries_total', 'head'):.0f} queries, missed events "
          f"{metric(page, 'opsite_feed_resume_reads_total', 'frames'):.0f} -> "
          f"{metric(page, 'opsite_feed_resume_queries_total', 'frames'):.0f} queries")  # fmt: skip
    boards_cpu = result.boards_cpu_s / (time.monotonic() - wall_before)
    print(f"  client CPU: the boards {boards_cpu:.0%} and the till {client_cpu:.0%} of one core on average "
          f"(the machine has {os.cpu_count()})")  # fmt: skip


if __name__ == "__main__":
    main()
