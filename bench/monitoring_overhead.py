"""What request monitoring costs, and how the probes behave.

1. µs per request inside one process: WSGI handlers built from the same settings with opsite's
   request monitoring (request id and trace context, per-route tallies, Prometheus counters and
   latency histogram with exemplars, query timing, SQL trace comments), without it, and with a
   no-op middleware in its place, called in turn on two pages (the trivial GET /health/live, a
   page of 20 different queries); the minimum over many rounds. Targets: <= 20 µs per request,
   <= 2 % on the 20-query page.
1b. The same as instructions (valgrind's callgrind, which counts the same whatever the machine
   is doing): instructions per trivial request with and without the monitoring.
2. Over HTTP: gunicorn, one worker pinned to one core, wrk -c8 on the other, rounds interleaved:
   requests/s with monitoring off, on, on without SQL comments, and a bare Django project
   (startproject's middleware, same pages, same database settings). Held-out target: opsite
   >= 0.95 of the bare project's requests/s.
3. Probes: 200 requests/s for --probe-seconds to /health/live and /health/ready on gunicorn;
   p99 latency and the number of Postgres connections before, during and after.
   Targets: live p99 <= 2 ms, ready p99 <= 10 ms, connections flat.
4. Percentile accuracy of the log-bucket histograms on 1 M skewed samples. Target: within 2 %.

    .venv/bin/python bench/monitoring_overhead.py [--seconds 10] [--rounds 5] [--probe-seconds 60]
Needs wrk (Debian package wrk); 1b needs valgrind.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import random
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import psycopg
from _support import BENCH_DB, PG, ROOT, bench_env, free_port, fresh_database, gunicorn, percentile, server
from http_layouts import wrk

PAGES = {"trivial": "/health/live", "20 queries": "/bench/twenty-queries"}
SITES = {
    "monitoring off": ("opsite.wsgi:application", "sites.opsite_settings", {"OPSITE_REQUEST_MONITORING": "false"}),
    "monitoring on": ("opsite.wsgi:application", "sites.opsite_settings", {}),
    "on, no SQL comments": ("opsite.wsgi:application", "sites.opsite_settings", {"OPSITE_SQL_COMMENTS": "false"}),
    "bare Django": ("sites.bare_wsgi:application", "sites.bare_settings", {}),
}


def pinned(command: list[str], core: int) -> list[str]:
    # Server on one core, load generator on the other: far less noise on a 2-core machine.
    return ["taskset", "-c", str(core), *command] if shutil.which("taskset") else command


def site_command(port: int, app: str) -> list[str]:
    command = gunicorn(port)
    if app != "opsite.wsgi:application":  # same worker class, threads and keep-alive; none of opsite's hooks
        command[command.index("opsite.wsgi:application")] = app
        command += ["-c", str(ROOT / "bench" / "sites" / "bare_gunicorn.conf.py")]
    return command


def rates(args: argparse.Namespace) -> dict[tuple[str, str], float]:
    """Median requests/s per (site, page) over interleaved rounds."""
    found: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for site, (app, settings_module, extra) in SITES.items():
            port = free_port()
            env = bench_env(DJANGO_SETTINGS_MODULE=settings_module, PYTHONPATH=f"{ROOT / 'bench'}:{ROOT}", **extra)
            with server(pinned(site_command(port, app), 0), port=port, env=env) as url:
                for page, path in PAGES.items():
                    wrk(url + path, 2, 8, core=1)
                    found.setdefault((site, page), []).append(wrk(url + path, args.seconds, 8, core=1))
    return {key: statistics.median(values) for key, values in found.items()}


def in_process(args: argparse.Namespace) -> None:
    print(f"1. µs per request inside one process (handlers with and without the monitoring middleware, called in "
          f"turn, {args.rounds * 4} rounds; min of rounds, median in brackets), server pinned to one core")  # fmt: skip
    env = bench_env(DJANGO_SETTINGS_MODULE="sites.opsite_settings", PYTHONPATH=f"{ROOT / 'bench'}:{ROOT}")
    command = pinned([sys.executable, str(ROOT / "bench" / "sites" / "inprocess.py"), str(args.rounds * 4)], 0)
    found = json.loads(subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout)
    for page, modes in found.items():
        on, off = modes["on"], modes["off"]
        cost, typical = on["min"] - off["min"], on["median"] - off["median"]
        target = "<= 20 µs" if page == "trivial" else f"<= 2 %: {cost / off['min'] * 100:.2f} %"
        print(f"  {page:10s} off {off['min']:8.1f} µs  on {on['min']:8.1f} µs  monitoring costs {cost:6.1f} µs "
              f"({typical:6.1f})  target {target}")  # fmt: skip


def callgrind_instructions(mode: str, n: int) -> int:
    """Instructions the process runs (callgrind) to start, warm up and answer ``n`` trivial requests."""
    env = bench_env(DJANGO_SETTINGS_MODULE="sites.opsite_settings", PYTHONPATH=f"{ROOT / 'bench'}:{ROOT}",
                    LOG_LEVEL="ERROR", **QUIET_LOOPS)  # fmt: skip
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
               str(ROOT / "bench" / "sites" / "inprocess.py"), "--count", mode, "trivial", str(n)]  # fmt: skip
    output = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True).stderr
    found = re.search(r"Collected : (\d+)", output)
    assert found, output[-2000:]
    return int(found.group(1))


# The periodic loops (profile arms, flushes) would be charged to the few requests valgrind's
# slowness lets through; they cost the same per period however many requests there are.
QUIET_LOOPS = {
    "OPSITE_PROFILE_ARM_REFRESH_S": "3600",
    "OPSITE_METRICS_FLUSH_S": "3600",
    "OPSITE_SERIES_APPLY_S": "3600",
}


def instructions(args: argparse.Namespace) -> None:
    """Instructions per trivial request (callgrind counts are the same run after run, whatever
    else the machine does): (count at 600 requests - count at 100) / 500, per middleware chain."""
    if shutil.which("valgrind") is None:
        print("1b. skipped: valgrind is not installed")
        return
    print("1b. instructions per trivial request (callgrind; 600 - 100 requests, / 500), each mode in its own process")
    per: dict[str, float] = {}
    for mode in ("off", "noop", "on"):
        with ThreadPoolExecutor(2) as pool:
            low, high = pool.map(callgrind_instructions, (mode, mode), (100, 600))
        per[mode] = (high - low) / 500
    for mode, label in (("off", "without monitoring"), ("noop", "a middleware that does nothing"),
                        ("on", "opsite's monitoring")):  # fmt: skip
        extra = per[mode] - per["off"]
        print(f"  {label:32s} {per[mode]:10.0f} instructions  {extra:+9.0f} ({extra / per['off'] * 100:+.1f} %)")


def throughput(args: argparse.Namespace) -> None:
    print(f"2. over HTTP: gunicorn, one worker on one core, wrk -c8 -d{args.seconds}s on the other, "
          f"{args.rounds} interleaved rounds (medians)")  # fmt: skip
    found = rates(args)
    for page in PAGES:
        off, on, uncommented, bare = (found[(site, page)] for site in SITES)
        cost_us = 1e6 / on - 1e6 / off
        share = cost_us / (1e6 / off) * 100
        target = "<= 20 µs" if page == "trivial" else "<= 2 %"
        print(f"  {page:10s} off {off:7.0f} req/s  on {on:7.0f} req/s  monitoring costs {cost_us:6.1f} µs "
              f"per request = {share:5.2f} % of the page (target {target})")  # fmt: skip
        print(f"  {'':10s} of which the SQL trace comments: {1e6 / on - 1e6 / uncommented:6.1f} µs per request")
        print(f"  {'':10s} bare Django {bare:7.0f} req/s  opsite/bare {on / bare:.3f} (target >= 0.95)")


def connections() -> int:
    with psycopg.connect(f"{PG}/postgres") as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [BENCH_DB]).fetchone()
        return int(row[0]) if row else 0


def probe(port: int, path: str, rate: float, seconds: float) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    latencies: list[float] = []
    start = time.perf_counter()
    n = 0
    while time.perf_counter() - start < seconds:
        due = start + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        t0 = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        latencies.append((time.perf_counter() - t0) * 1000)
        assert response.status in (200, 503), response.status
        n += 1
    conn.close()
    return latencies


def sample_connections(stop: threading.Event, into: list[int]) -> None:
    while not stop.wait(1):
        into.append(connections())


def probes(args: argparse.Namespace) -> None:
    print(f"3. 200 probes/s for {args.probe_seconds:.0f} s on gunicorn (one sync worker each path)")
    for path, target in (("/health/live", 2), ("/health/ready", 10)):
        port = free_port()
        with server(gunicorn(port, workers=1), port=port, env=bench_env()):
            before = connections()
            during: list[int] = []
            sampler_stop = threading.Event()
            sampler = threading.Thread(target=sample_connections, args=(sampler_stop, during), daemon=True)
            sampler.start()
            latencies = probe(port, path, 200, args.probe_seconds)
            sampler_stop.set()
            sampler.join()
            after = connections()
        print(f"  {path:14s} {len(latencies)} probes  p50 {percentile(latencies, 50):5.2f} ms  "
              f"p99 {percentile(latencies, 99):5.2f} ms (target <= {target} ms)  "
              f"db connections before {before}, during max {max(during, default=before)}, after {after}")  # fmt: skip


def accuracy() -> None:
    from monitoring.requests.histogram import bucket_of, quantiles

    rng = random.Random(42)
    values = [rng.lognormvariate(2.5, 0.6) if rng.random() < 0.97 else 50 * rng.paretovariate(1.3)
              for _ in range(1_000_000)]  # fmt: skip
    histogram = Counter(bucket_of(v) for v in values)
    ordered = sorted(values)
    estimated = quantiles(histogram, [0.5, 0.95, 0.99])
    print("4. percentiles from the histogram vs exact, 1 M skewed samples (log-normal + Pareto tail)")
    for q in (0.5, 0.95, 0.99):
        truth = ordered[max(1, math.ceil(q * len(ordered))) - 1]
        error = abs(estimated[q] - truth) / truth * 100
        print(
            f"  p{int(q * 100):<3d} exact {truth:9.3f} ms  histogram {estimated[q]:9.3f} ms  error {error:.2f} %  (target < 2 %)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--probe-seconds", type=float, default=60)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    fresh_database()
    in_process(args)
    instructions(args)
    throughput(args)
    probes(args)
    accuracy()


if __name__ == "__main__":
    main()
