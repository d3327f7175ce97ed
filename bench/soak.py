"""Soak: 1,000 sockets over 50 restaurants for 10 minutes with steady ingest through HTTP
(production layout: gunicorn for HTTP, uvicorn for sockets). Reports lost events (goal 0) and
the growth of the socket server's and the HTTP workers' RSS from the end of the first minute
to the end (goal <= 5 %).

    .venv/bin/python bench/soak.py [--sockets 1000] [--restaurants 50] [--rate 20] [--seconds 600]
"""

from __future__ import annotations

import argparse
import asyncio

import psutil
from _support import bench_env, free_port, fresh_database, gunicorn, server, session_cookie, uvicorn
from feed_tenants import scenario

SAMPLE_S = 10.0


def listening(port: int) -> psutil.Process:
    for conn in psutil.net_connections("tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
            return psutil.Process(conn.pid)
    raise RuntimeError(f"nothing listens on {port}")


def rss(process: psutil.Process) -> int:
    total = 0
    for proc in [process, *process.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total


async def soak(args: argparse.Namespace, ws_port: int, http_port: int, http_url: str, tenants: list[tuple[str, str]],
               cookie: str) -> None:  # fmt: skip
    ws_proc, http_proc = listening(ws_port), listening(http_port)
    samples: list[tuple[float, int, int]] = []

    async def sample() -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        while True:
            samples.append((loop.time() - started, rss(ws_proc), rss(http_proc)))
            await asyncio.sleep(SAMPLE_S)

    sampler = asyncio.create_task(sample())
    result = await scenario(args, ws_port, http_url, tenants, cookie)
    sampler.cancel()
    samples.append((samples[-1][0] + SAMPLE_S, rss(ws_proc), rss(http_proc)))
    warm = next((s for s in samples if s[0] >= 60), samples[0])
    end = samples[-1]
    print(f"  sent {result['achieved_rate']:.1f} orders/s; delivered p50 {result['p50_ms']:.1f} ms, "
          f"p99 {result['p99_ms']:.1f} ms; HTTP {result['statuses']}")  # fmt: skip
    print(f"  lost events: {result['lost']} (goal 0); cross-tenant: {result['leaks']}")
    for label, index in (("uvicorn (sockets)", 1), ("gunicorn (HTTP)", 2)):
        growth = (end[index] - warm[index]) / warm[index] * 100
        verdict = "ok" if growth <= 5 else "MISSED"
        print(f"  {label:18} RSS {warm[index] / 2**20:6.1f} MiB at {warm[0]:.0f} s -> {end[index] / 2**20:6.1f} MiB "
              f"at {end[0]:.0f} s: {growth:+.1f} % (goal <= 5 %) {verdict}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--restaurants", type=int, default=50)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--gunicorn-workers", type=int, default=2)
    args = parser.parse_args()
    fresh_database()
    from realtime.services import restaurant_create

    tenants = [restaurant_create(slug=f"s{i:03d}", name=f"Soak {i}") for i in range(args.restaurants)]
    pairs = [(restaurant.slug, token) for restaurant, token in tenants]
    cookie = session_cookie("bench-admin")
    env = bench_env()
    print(
        f"soak: {args.sockets} sockets over {args.restaurants} restaurants, {args.rate:.0f} orders/s for {args.seconds:.0f} s"
    )
    ws_port, http_port = free_port(), free_port()
    with (
        server(uvicorn(ws_port), port=ws_port, env=env),
        server(gunicorn(http_port, workers=args.gunicorn_workers), port=http_port, env=env) as http_url,
    ):
        asyncio.run(soak(args, ws_port, http_port, http_url, pairs, cookie))


if __name__ == "__main__":
    main()
