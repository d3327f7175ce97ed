"""Many restaurants at once: N sockets over M restaurants, orders at a steady rate through
the HTTP ingest API; ingest -> receive latency, lost events and cross-tenant leaks.

Runs the production layout (gunicorn WSGI workers for HTTP, one uvicorn process for
sockets) and, side by side, everything on the one uvicorn process.

    .venv/bin/python bench/feed_tenants.py [--sockets 1000] [--restaurants 50] [--rate 100] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import time

import httpx
import websockets
from _support import bench_env, free_port, fresh_database, gunicorn, percentile, server, session_cookie, uvicorn


async def scenario(args: argparse.Namespace, ws_port: int, http_url: str, tenants: list[tuple[str, str]], cookie: str):
    semaphore = asyncio.Semaphore(50)
    owners: list[str] = []

    async def open_one(slug: str) -> websockets.ClientConnection:
        async with semaphore:
            ws = await websockets.connect(
                f"ws://127.0.0.1:{ws_port}/ws/restaurants/{slug}/orders/",
                additional_headers={"Cookie": cookie}, origin=f"http://127.0.0.1:{ws_port}", open_timeout=60,
                max_queue=None,
            )  # fmt: skip
            assert json.loads(await ws.recv())["type"] == "hello"
            return ws

    slugs = [tenants[i % len(tenants)][0] for i in range(args.sockets)]
    sockets = list(await asyncio.gather(*(open_one(slug) for slug in slugs)))
    gc.freeze()  # the measuring client's own GC pauses must not count as delivery latency
    owners = slugs
    latencies: list[float] = []
    leaks = 0
    received = 0

    async def listen(ws: websockets.ClientConnection, slug: str) -> None:
        nonlocal leaks, received
        async for raw in ws:
            frame = json.loads(raw)
            if frame.get("type") == "ping":  # as the board does, or the server closes a silent client (4408)
                await ws.send('{"type":"pong"}')
                continue
            if not frame.get("type", "").startswith("order."):
                continue
            received += 1
            if frame["restaurant"] != slug or not frame["order_id"].startswith(slug + ":"):
                leaks += 1
            latencies.append(time.time() - frame["data"]["t"])

    listeners = [asyncio.create_task(listen(ws, slug)) for ws, slug in zip(sockets, owners, strict=True)]
    per_tenant_sockets = {slug: owners.count(slug) for slug, _ in tenants}
    expected = 0
    statuses: dict[int, int] = {}
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(base_url=http_url, limits=limits, timeout=30) as client:
        total = int(args.rate * args.seconds)
        started = time.monotonic()
        pending = []

        async def post(n: int) -> None:
            slug, token = tenants[n % len(tenants)]
            body = {"type": "order.created", "order_id": f"{slug}:{n}", "total_amount": "9.50", "items_count": 1,
                    "data": {"t": time.time()}}  # fmt: skip
            response = await client.post(
                "/api/v1/orders/events", json=body, headers={"Authorization": f"Bearer {token}"}
            )
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        for n in range(total):
            delay = started + n / args.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(asyncio.create_task(post(n)))
            expected += per_tenant_sockets[tenants[n % len(tenants)][0]]
        await asyncio.gather(*pending)
        achieved = total / (time.monotonic() - started)
    deadline = time.monotonic() + 30
    while received < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    for task in listeners:
        task.cancel()
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return {
        "achieved_rate": achieved,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p95_ms": percentile(latencies, 95) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "lost": expected - received,
        "leaks": leaks,
        "statuses": statuses,
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
    cpu_before, wall_before = os.times(), time.monotonic()
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
        results["one uvicorn process (HTTP + sockets)"] = asyncio.run(scenario(args, ws_port, ws_url, tenants, cookie))
    ws_port, http_port = free_port(), free_port()
    with (
        server(uvicorn(ws_port), port=ws_port, env=env),
        server(gunicorn(http_port, workers=args.gunicorn_workers), port=http_port, env=env) as http_url,
    ):
        name = f"gunicorn x{args.gunicorn_workers} (HTTP) + uvicorn (sockets)"
        results[name] = asyncio.run(scenario(args, ws_port, http_url, tenants, cookie))
    if args.ws_workers > 1:
        ws_port, http_port = free_port(), free_port()
        with (
            server(uvicorn(ws_port, workers=args.ws_workers), port=ws_port, env=env),
            server(gunicorn(http_port, workers=args.gunicorn_workers), port=http_port, env=env) as http_url,
        ):
            name = f"gunicorn x{args.gunicorn_workers} (HTTP) + uvicorn x{args.ws_workers} (sockets)"
            results[name] = asyncio.run(scenario(args, ws_port, http_url, tenants, cookie))
    for name, r in results.items():
        print(f"  {name:52s} sent {r['achieved_rate']:6.1f}/s  p50 {r['p50_ms']:7.1f} ms  p95 {r['p95_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms  "
              f"lost {r['lost']}  cross-tenant {r['leaks']}  HTTP {r['statuses']}")  # fmt: skip
    cpu = os.times()
    share = (cpu.user - cpu_before.user + cpu.system - cpu_before.system) / (time.monotonic() - wall_before)
    print(f"  the measuring client used {share:.0%} of one core on average ({os.cpu_count()} cores, shared)")
    print("  target: p99 <= 25 ms, 0 lost, 0 cross-tenant")


if __name__ == "__main__":
    main()
