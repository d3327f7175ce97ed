"""Load: Locust (bench/locustfile.py) headless against the production layout on one machine:
gunicorn for HTTP, uvicorn for sockets, a Celery worker and beat, over a scratch database.
Prints Locust's figures per request kind and the servers' CPU and memory: the sizing figures.

    .venv/bin/python bench/load.py [--users 300] [--spawn-rate 50] [--seconds 120] [--restaurants 20]
    .venv/bin/python bench/load.py --fixture-only   # write the fixture and stop (for a remote run)
"""

from __future__ import annotations

import argparse
import csv
import json
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
from _support import ROOT, bench_env, free_port, fresh_database, gunicorn, server, session_cookie, uvicorn
from soak import listening, rss

FIXTURE = Path("/tmp/opsite-load.json")
CSV_PREFIX = "/tmp/opsite-load"


BOARD_STAFF_PER_RESTAURANT = 8  # x the per-user socket cap (10) = boards each restaurant can hold


def prepare(restaurants: int) -> str:
    fresh_database()
    from realtime.services import restaurant_create, staff_add

    places = [restaurant_create(slug=f"l{i:03d}", name=f"Load {i}") for i in range(restaurants)]
    boards = []
    for n in range(BOARD_STAFF_PER_RESTAURANT):  # round-robin over restaurants, then staff
        for restaurant, _token in places:
            username = f"{restaurant.slug}-board-{n}"
            staff_add(slug=restaurant.slug, username=username, password=secrets.token_urlsafe(12))
            boards.append({"slug": restaurant.slug, "cookie": session_cookie(username)})
    ops_token = secrets.token_urlsafe(16)
    FIXTURE.write_text(json.dumps({
        "restaurants": [{"slug": r.slug, "token": token} for r, token in places],
        "boards": boards,
        "cookie": session_cookie("bench-admin"),
        "ops_token": ops_token,
    }))  # fmt: skip
    return ops_token


class CpuSampler(threading.Thread):
    """CPU seconds and peak RSS of each server process tree while the load runs."""

    def __init__(self, procs: dict[str, psutil.Process]) -> None:
        super().__init__(daemon=True)
        self.procs = procs
        self.peak = dict.fromkeys(procs, 0)
        self.stopping = threading.Event()
        self.cpu_start = {name: self._cpu(p) for name, p in procs.items()}

    @staticmethod
    def _cpu(process: psutil.Process) -> float:
        total = 0.0
        for proc in [process, *process.children(recursive=True)]:
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                continue
        return total

    def run(self) -> None:
        while not self.stopping.wait(2):
            for name, proc in self.procs.items():
                self.peak[name] = max(self.peak[name], rss(proc))

    def finish(self, seconds: float) -> dict[str, tuple[float, float]]:
        self.stopping.set()
        return {name: ((self._cpu(p) - self.cpu_start[name]) / seconds * 100, self.peak[name] / 2**20)
                for name, p in self.procs.items()}  # fmt: skip


def celery(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "opsite", *args, "--loglevel", "WARNING"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def report(seconds: float, usage: dict[str, tuple[float, float]]) -> None:
    with open(f"{CSV_PREFIX}_stats.csv") as f:
        rows = list(csv.DictReader(f))
    print(f"{'kind':6} {'name':28} {'requests':>9} {'fails':>6} {'per s':>7} {'p50':>7} {'p95':>7} {'p99':>7}")
    for row in rows:
        print(f"{row['Type']:6} {row['Name']:28} {row['Request Count']:>9} {row['Failure Count']:>6} "
              f"{float(row['Requests/s']):7.1f} {row['50%']:>5}ms {row['95%']:>5}ms {row['99%']:>5}ms")  # fmt: skip
    print(f"\nservers over {seconds:.0f} s (CPU in % of one core, peak RSS of the process tree):")
    for name, (cpu, peak) in usage.items():
        print(f"  {name:22} CPU {cpu:6.1f} %   RSS {peak:7.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--spawn-rate", type=float, default=50)
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--restaurants", type=int, default=20)
    parser.add_argument("--gunicorn-workers", type=int, default=2)
    parser.add_argument("--fixture-only", action="store_true")
    args = parser.parse_args()
    ops_token = prepare(args.restaurants)
    if args.fixture_only:
        print(f"fixture written to {FIXTURE}")
        return
    env = bench_env(OPS_API_TOKENS=ops_token)
    ws_port, http_port = free_port(), free_port()
    workers = [celery(["worker", "-c", "2"], env), celery(["beat", "-s", "/tmp/opsite-load-beat"], env)]
    try:
        with (
            server(uvicorn(ws_port), port=ws_port, env=env),
            server(gunicorn(http_port, workers=args.gunicorn_workers), port=http_port, env=env) as http_url,
        ):
            procs = {"gunicorn (HTTP)": listening(http_port), "uvicorn (sockets)": listening(ws_port),
                     "celery worker": psutil.Process(workers[0].pid)}  # fmt: skip
            sampler = CpuSampler(procs)
            sampler.start()
            started = time.monotonic()
            subprocess.run(
                [sys.executable, "-m", "locust", "-f", str(ROOT / "bench" / "locustfile.py"), "--headless",
                 "-u", str(args.users), "-r", str(args.spawn_rate), "-t", f"{args.seconds}s", "--host", http_url,
                 "--csv", CSV_PREFIX, "--only-summary", "--loglevel", "WARNING", "--stop-timeout", "5"],
                env={**env, "OPSITE_LOAD_FIXTURE": str(FIXTURE), "OPSITE_LOAD_WS_URL": f"ws://127.0.0.1:{ws_port}"},
                check=False, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            usage = sampler.finish(time.monotonic() - started)
    finally:
        for proc in workers:
            proc.terminate()
        for proc in workers:
            proc.wait(timeout=60)
    print(f"{args.users} users ({args.restaurants} restaurants), {args.seconds} s, "
          f"gunicorn x{args.gunicorn_workers} + uvicorn + worker + beat, locust on the same machine\n")  # fmt: skip
    report(args.seconds, usage)


if __name__ == "__main__":
    main()
