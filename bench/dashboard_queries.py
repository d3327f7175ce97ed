"""The dashboard's reads on a realistic history: 90 days of minute snapshots for 4 hosts (+ the
installation's row, ~648 k rows) and 10 restaurants open 12 h a day (~648 k rows), hour rows
rolled up by opsite's own rollup job.

For every range (1 h, 24 h, 7 d, 30 d, 90 d) it times GET /ops/api/series over HTTP (gunicorn,
a logged-in session), all hosts and one host: cold (the cache emptied before every request)
and warm (the cached answer), against the naive read the rollups and bucketing avoid: every
minute row of the range, fetched as rows. Target: p95 <= 100 ms for any range.

Then the first load of /ops/ (the page and the three requests its script makes) with an empty
cache against the same right after `warm_cache`.

    .venv/bin/python bench/dashboard_queries.py [--days 90] [--hosts 4] [--rounds 40] [--reuse]
"""

from __future__ import annotations

import argparse
import io
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
from _support import (
    BENCH_DB,
    PG,
    bench_env,
    free_port,
    fresh_database,
    gunicorn,
    percentile,
    server,
    session_cookie,
    setup_django,
)

RESTAURANTS = 10


def copy_rows(conn: psycopg.Connection, table: str, columns: list[str], rows: io.StringIO) -> None:
    rows.seek(0)
    with conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        while chunk := rows.read(1 << 20):
            copy.write(chunk)


def generate(days: int, hosts: int) -> tuple[datetime, int]:
    from realtime.services import restaurant_create

    ids = [restaurant_create(slug=f"bench-{n}", name=f"Bench {n}")[0].pk for n in range(RESTAURANTS)]
    rng = random.Random(7)
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    start = end - timedelta(days=days)
    names = [f"web-{n + 1}" for n in range(hosts)]
    metric_cols = ["resolution", "taken_at", "host", "nodes", "cpu_percent", "memory_percent", "disk_percent",
                   "load_1", "process_rss_bytes", "open_files", "requests", "errors", "slow_requests",
                   "request_rate", "error_rate", "p50_ms", "p95_ms", "p99_ms", "sockets", "db_connections",
                   "db_size_bytes", "redis_memory_bytes", "redis_clients", "queue_depth", "workers",
                   "latency_histogram", "spread"]  # fmt: skip
    resto_cols = ["resolution", "taken_at", "restaurant_id", "orders", "paid", "revenue"]
    metrics, restos = io.StringIO(), io.StringIO()
    n_rows = 0
    minute = start
    while minute < end:
        at = minute.isoformat()
        day_load = 0.3 + 0.7 * max(0.0, 1 - abs(minute.hour - 13) / 9)
        total_requests = 0
        for host in names:
            requests = int(600 * day_load * rng.uniform(0.8, 1.2))
            total_requests += requests
            hist = f'{{"{rng.randint(150, 160)}": {requests - 5}, "{rng.randint(340, 360)}": 5}}'
            metrics.write("\t".join(map(str, [
                60, at, host, 3, round(rng.uniform(10, 90) * day_load, 1), round(rng.uniform(30, 60), 1), 41.0,
                round(2 * day_load, 2), 900_000_000, 120, requests, rng.randint(0, 3), 1, requests / 60, 0.002,
                20.0, 60.0, 140.0, int(200 * day_load), "\\N", "\\N", "\\N", "\\N", "\\N", "\\N", hist, "{}",
            ])) + "\n")  # fmt: skip
            n_rows += 1
        metrics.write("\t".join(map(str, [
            60, at, "*", 3 * hosts, "\\N", "\\N", "\\N", "\\N", 900_000_000 * hosts, 120 * hosts, total_requests, 4,
            hosts, total_requests / 60, 0.002, 20.0, 60.0, 140.0, int(200 * hosts * day_load), 40, 5_000_000_000,
            80_000_000, 60, rng.randint(0, 20), hosts, f'{{"155": {total_requests}}}', "{}",
        ])) + "\n")  # fmt: skip
        n_rows += 1
        if 9 <= minute.hour < 21:
            for rid in ids:
                orders = rng.randint(0, 4)
                restos.write(f"60\t{at}\t{rid}\t{orders}\t{orders}\t{orders * 23.5:.2f}\n")
                n_rows += 1
        minute += timedelta(minutes=1)
    with psycopg.connect(f"{PG}/{BENCH_DB}") as conn:
        copy_rows(conn, "monitoring_metricsnapshot", metric_cols, metrics)
        copy_rows(conn, "monitoring_restaurantsnapshot", resto_cols, restos)
        conn.execute("ANALYZE monitoring_metricsnapshot")
        conn.execute("ANALYZE monitoring_restaurantsnapshot")
    return end, n_rows


def naive_series(range_key: str, now: datetime) -> int:
    """The same range read from the minute rows, as a dashboard without rollups would."""
    from monitoring.dashboard.figures import CLUSTER_SERIES, HOST_SERIES, RANGES
    from monitoring.models import MetricSnapshot, Resolution

    since = now - RANGES[range_key].span
    rows = MetricSnapshot.objects.filter(resolution=Resolution.MINUTE, taken_at__gte=since)
    return sum(1 for _ in rows.values_list("host", "taken_at", *CLUSTER_SERIES, *HOST_SERIES).iterator())


def timed(call, rounds: int) -> list[float]:  # type: ignore[no-untyped-def]
    call()  # warm
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--reuse", action="store_true", help="keep the data of the previous run")
    args = parser.parse_args()

    if args.reuse:
        setup_django()
    else:
        fresh_database()
    from django.core.cache import cache
    from django.utils import timezone

    from monitoring.dashboard.figures import RANGES
    from monitoring.history.snapshots import snapshot_rollup

    if not args.reuse:
        started = time.perf_counter()
        end, n_rows = generate(args.days, args.hosts)
        print(f"generated {n_rows:,} minute rows ({args.days} d, {args.hosts} hosts + installation, "
              f"{RESTAURANTS} restaurants) in {time.perf_counter() - started:.1f} s")  # fmt: skip
        started = time.perf_counter()
        rolled = snapshot_rollup(now=end + timedelta(minutes=5))
        print(f"rolled up {rolled} in {time.perf_counter() - started:.1f} s (opsite's rollup job)")
        with psycopg.connect(f"{PG}/{BENCH_DB}", autocommit=True) as conn:  # as autovacuum would
            conn.execute("VACUUM ANALYZE monitoring_metricsnapshot")
            conn.execute("VACUUM ANALYZE monitoring_restaurantsnapshot")
    cookie = session_cookie("bench-admin")
    port = free_port()
    env = bench_env(OPSITE_SNAPSHOT_MINUTE_DAYS=str(args.days + 1))
    print(f"\n{'range':>6} {'hosts':>5} {'points':>7} {'cold p50':>9} {'cold p95':>9} {'warm p95':>9} "
          f"{'naive p95':>10} {'cold/naive':>10}  target (cold p95 <= 100 ms)")  # fmt: skip
    with server(gunicorn(port, workers=1), port=port, env=env) as url, httpx.Client(headers={"Cookie": cookie}) as http:
        for range_key in RANGES:
            naive = timed(lambda rk=range_key: naive_series(rk, timezone.now()), max(5, args.rounds // 4))
            for hosts in ([], ["web-1"]):
                params = [("range", range_key), *[("host", h) for h in hosts]]
                body = http.get(f"{url}/ops/api/series", params=params, timeout=30).json()
                points = len(body["cluster"]["t"]) + sum(len(h["t"]) for h in body["hosts"].values())

                def cold(p=params):  # type: ignore[no-untyped-def]
                    cache.clear()
                    http.get(f"{url}/ops/api/series", params=p, timeout=30).raise_for_status()

                cold_ms = timed(cold, args.rounds)
                warm_ms = timed(lambda p=params: http.get(f"{url}/ops/api/series", params=p, timeout=30), args.rounds)
                p95, naive_p95 = percentile(cold_ms, 95), percentile(naive, 95)
                verdict = "ok" if p95 <= 100 else "MISSED"
                print(f"{range_key:>6} {len(hosts) or 'all':>5} {points:>7} {percentile(cold_ms, 50):>9.1f} {p95:>9.1f} "
                      f"{percentile(warm_ms, 95):>9.1f} {naive_p95:>10.1f} {p95 / naive_p95:>10.2f}  {verdict}")  # fmt: skip
        first_load(http, url, cache, args.rounds)


def first_load(http: httpx.Client, url: str, cache: Any, rounds: int) -> None:
    from monitoring.dashboard.warming import cache_warm

    def load() -> None:
        for path in ("/ops/", "/ops/api/series?range=1h", "/ops/api/tables", "/ops/api/live"):
            http.get(url + path, timeout=30).raise_for_status()

    def cold() -> None:
        cache.clear()
        load()

    def warmed() -> float:
        cache.clear()
        cache_warm()
        started = time.perf_counter()
        load()
        return (time.perf_counter() - started) * 1000

    cold_ms = timed(cold, rounds)
    warm_ms = [warmed() for _ in range(rounds)]
    print(
        f"\nfirst /ops/ load (page + series 1h + tables + live): cold p50 {percentile(cold_ms, 50):.1f} ms, "
        f"p95 {percentile(cold_ms, 95):.1f} ms; after warm_cache p50 {percentile(warm_ms, 50):.1f} ms, "
        f"p95 {percentile(warm_ms, 95):.1f} ms ({percentile(warm_ms, 50) / percentile(cold_ms, 50):.2f}x)"
    )


if __name__ == "__main__":
    main()
