"""What request monitoring costs, and how the probes behave.

1. Throughput of a trivial view (GET /health/live) with opsite's monitoring on vs off
   (OPSITE_REQUEST_MONITORING=false), same server, one process: gunicorn (WSGI) and uvicorn
   (ASGI), runs interleaved, wrk -c8. Target: on/off >= 0.95 for each.
2. Probes: 200 requests/s for --probe-seconds to /health/live and /health/ready on gunicorn;
   p99 latency and the number of Postgres connections before, during and after.
   Targets: live p99 <= 2 ms, ready p99 <= 10 ms, connections flat.
3. Percentile accuracy of the log-bucket histograms on 1 M skewed samples. Target: within 2 %.

    .venv/bin/python bench/monitoring_overhead.py [--seconds 10] [--rounds 3] [--probe-seconds 60]
Needs wrk (Debian package wrk).
"""

from __future__ import annotations

import argparse
import http.client
import math
import random
import shutil
import statistics
import threading
import time
from collections import Counter

import psycopg
from _support import BENCH_DB, PG, bench_env, free_port, fresh_database, gunicorn, percentile, server, uvicorn
from http_layouts import wrk


def pinned(command: list[str], core: int) -> list[str]:
    # Server on one core, load generator on the other: far less noise on a 2-core machine.
    return ["taskset", "-c", str(core), *command] if shutil.which("taskset") else command


def throughput(args: argparse.Namespace) -> None:
    print(f"1. GET /health/live, one process, wrk -c8 -d{args.seconds}s, {args.rounds} interleaved rounds, "
          "server and wrk pinned to separate cores")  # fmt: skip
    for name, command_for in (("gunicorn (WSGI)", gunicorn), ("uvicorn (ASGI)", uvicorn)):
        rates: dict[str, list[float]] = {"on": [], "off": []}
        for _ in range(args.rounds):
            for mode in ("off", "on"):
                port = free_port()
                env = bench_env(OPSITE_REQUEST_MONITORING="true" if mode == "on" else "false")
                with server(pinned(command_for(port), 0), port=port, env=env) as url:
                    wrk(url + "/health/live", 2, 8, core=1)
                    rates[mode].append(wrk(url + "/health/live", args.seconds, 8, core=1))
        on, off = statistics.median(rates["on"]), statistics.median(rates["off"])
        print(f"  {name:16s} off {off:7.0f} req/s   on {on:7.0f} req/s   on/off {on / off:.3f}  (target >= 0.95)")


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
    print(f"2. 200 probes/s for {args.probe_seconds:.0f} s on gunicorn (one sync worker each path)")
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
    print("3. percentiles from the histogram vs exact, 1 M skewed samples (log-normal + Pareto tail)")
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
    fresh_database()
    throughput(args)
    probes(args)
    accuracy()


if __name__ == "__main__":
    main()
