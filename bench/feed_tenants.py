"""Many restaurants at once: N sockets over M restaurants, orders at a steady rate through
the HTTP ingest API; ingest -> receive latency, lost events and cross-tenant leaks.

Runs the production layout (gunicorn WSGI workers for HTTP, uvicorn for sockets, one process
and --ws-workers) and, side by side, everything on the one uvicorn process. The sockets are
held by the benches' Node.js listener (feed_listener.mjs), the orders sent from here; the CPU
share of each is printed.

    .venv/bin/python bench/feed_tenants.py [--sockets 1000] [--restaurants 50] [--rate 100] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

import httpx
from _support import (
    Listener,
    bench_env,
    free_port,
    fresh_database,
    gunicorn,
    percentile,
    server,
    session_cookie,
    uvicorn,
)


def scenario(args: argparse.Namespace, ws_port: int, http_url: str, tenants: list[tuple[str, str]],
             cookie: str) -> dict[str, Any]:  # fmt: skip
    slugs = [slug for slug, _ in tenants]
    per_tenant = {slug: len(range(i, args.sockets, len(slugs))) for i, slug in enumerate(slugs)}  # round-robin
    statuses: dict[int, int] = {}
    expected = 0
    with Listener(f"ws://127.0.0.1:{ws_port}", slugs, args.sockets, cookie) as listener:

        async def send_orders() -> float:
            nonlocal expected
            limits = httpx.Limits(max_connections=32)
            async with httpx.AsyncClient(base_url=http_url, limits=limits, timeout=30) as client:
                total = int(args.rate * args.seconds)
                started = time.monotonic()

                async def post(n: int) -> None:
                    slug, token = tenants[n % len(tenants)]
                    body = {"type": "order.created", "order_id": f"{slug}:{n}", "total_amount": "9.50",
                            "items_count": 1, "data": {"t": time.time()}}  # fmt: skip
                    response = await client.post(
                        "/api/v1/orders/events", json=body, headers={"Authorization": f"Bearer {token}"}
                    )
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

                pending = []
                for n in range(total):
                    delay = started + n / args.rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    pending.append(asyncio.create_task(post(n)))
                    expected += per_tenant[tenants[n % len(tenants)][0]]
                await asyncio.gather(*pending)
                return total / (time.monotonic() - started)

        cpu_before, wall_before = os.times(), time.monotonic()
        achieved = asyncio.run(send_orders())
        result = listener.results(expected=expected)
        cpu = os.times()
    sender_share = (cpu.user - cpu_before.user + cpu.system - cpu_before.system) / (time.monotonic() - wall_before)
    latencies = [ms for _, ms in result["samples"]]
    return {
        "achieved_rate": achieved,
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "lost": expected - len(latencies),
        "leaks": result["cross_tenant"],
        "statuses": statuses,
        "client_share": result["client_share"],
        "sender_share": sender_share,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--restaurants", type=int, default=50)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--gunicorn-workers", type=int, default=2)
    parser.add_argument("--ws-workers", type=int, default=2, help="uvicorn workers of the scaled-out layout")
    args = parser.parse_args()
    fresh_database()
    from realtime.services import restaurant_create

    tenants = []
    for i in range(args.restaurants):
        restaurant, token = restaurant_create(slug=f"t{i:03d}", name=f"Tenant {i}")
        tenants.append((restaurant.slug, token))
    cookie = session_cookie("bench-admin")
    env = bench_env()
    print(
        f"{args.sockets} sockets over {args.restaurants} restaurants, {args.rate:.0f} orders/s for {args.seconds:.0f} s"
    )
    results = {}
    ws_port = free_port()
    with server(uvicorn(ws_port), port=ws_port, env=env) as ws_url:
        results["one uvicorn process (HTTP + sockets)"] = scenario(args, ws_port, ws_url, tenants, cookie)
    ws_port, http_port = free_port(), free_port()
    with (
        server(uvicorn(ws_port), port=ws_port, env=env),
        server(gunicorn(http_port, workers=args.gunicorn_workers), port=http_port, env=env) as http_url,
    ):
        name = f"gunicorn x{args.gunicorn_workers} (HTTP) + uvicorn (sockets)"
        results[name] = scenario(args, ws_port, http_url, tenants, cookie)
    if args.ws_workers > 1:
        ws_port, http_port = free_port(), free_port()
        with (
            server(uvicorn(ws_port, workers=args.ws_workers), port=ws_port, env=env),
            server(gunicorn(http_port, workers=args.gunicorn_workers), port=http_port, env=env) as http_url,
        ):
            name = f"gunicorn x{args.gunicorn_workers} (HTTP) + uvicorn x{args.ws_workers} (sockets)"
            results[name] = scenario(args, ws_port, http_url, tenants, cookie)
    for name, r in results.items():
        print(f"  {name:52s} sent {r['achieved_rate']:6.1f}/s  p50 {r['p50_ms']:7.1f} ms  p95 {r['p95_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms  "
              f"lost {r['lost']}  cross-tenant {r['leaks']}  HTTP {r['statuses']}  "
              f"(client {r['client_share']:.0%} of a core, the sender {r['sender_share']:.0%})")  # fmt: skip
    print(f"  {os.cpu_count()} cores, shared by the servers and the clients")
    print("  target: p99 <= 25 ms, 0 lost, 0 cross-tenant")


if __name__ == "__main__":
    main()
