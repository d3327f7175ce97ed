"""One restaurant, N staff sockets, events at a steady rate: publish -> receive latency.

opsite (HTTP ingest, committed to Postgres, one channel-layer message per process, fanned
out by the process's hub) against the textbook Channels feed (a group membership per
socket on RedisPubSubChannelLayer), each under one uvicorn process, side by side.

    .venv/bin/python bench/feed_fanout.py [--sockets 1000] [--events 10] [--rate 5]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable

import httpx
import websockets
from _support import bench_env, free_port, fresh_database, http_origin, percentile, server, session_cookie, uvicorn


async def open_sockets(url: str, count: int, cookie: str) -> list[websockets.ClientConnection]:
    semaphore = asyncio.Semaphore(50)

    async def one() -> websockets.ClientConnection:
        async with semaphore:
            ws = await websockets.connect(
                url, additional_headers={"Cookie": cookie}, origin=http_origin(url), open_timeout=60, max_queue=None
            )
            hello = json.loads(await ws.recv())
            assert hello["type"] == "hello", hello
            return ws

    sockets = list(await asyncio.gather(*(one() for _ in range(count))))
    gc.freeze()  # the measuring client's own GC pauses must not count as delivery latency
    return sockets


async def measure(
    sockets: list[websockets.ClientConnection], events: int, rate: float, publish: Callable[[int], Awaitable[None]]
) -> dict[str, float]:
    latencies: list[float] = []
    seen = [0] * len(sockets)

    async def listen(index: int, ws: websockets.ClientConnection) -> None:
        while seen[index] < events:
            frame = json.loads(await ws.recv())
            if frame.get("type", "").startswith("order."):
                latencies.append(time.time() - frame["data"]["t"])
                seen[index] += 1

    listeners = [asyncio.create_task(listen(i, ws)) for i, ws in enumerate(sockets)]
    for n in range(events):
        await publish(n)
        await asyncio.sleep(1 / rate)
    await asyncio.wait(listeners, timeout=30)
    for task in listeners:
        task.cancel()
    expected = events * len(sockets)
    return {
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": max(latencies, default=float("nan")) * 1000,
        "lost": expected - len(latencies),
    }


def event_body(n: int) -> dict[str, object]:
    return {"type": "order.created", "order_id": f"fan-{n}", "total_amount": "12.00", "items_count": 2,
            "data": {"t": time.time()}}  # fmt: skip


def daphne(port: int) -> list[str]:
    return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "opsite.asgi:application"]


async def run_opsite(
    args: argparse.Namespace, cookie: str, slug: str, token: str, workers: int = 1
) -> dict[str, float]:
    port = free_port()
    command = uvicorn(port, workers=workers) if args.server == "uvicorn" else daphne(port)
    with server(command, port=port, env=bench_env()) as url:
        sockets = await open_sockets(f"ws://127.0.0.1:{port}/ws/restaurants/{slug}/orders/", args.sockets, cookie)
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:

            async def publish(n: int) -> None:
                response = await client.post("/api/v1/orders/events", json=event_body(n))
                assert response.status_code == 201, response.text

            result = await measure(sockets, args.events, args.rate, publish)
        await asyncio.gather(*(ws.close() for ws in sockets))
    return result


async def run_baseline(args: argparse.Namespace, cookie: str, slug: str) -> dict[str, float]:
    from _support import REDIS_URL
    from channels_redis.pubsub import RedisPubSubChannelLayer

    port = free_port()
    layer = RedisPubSubChannelLayer(hosts=[REDIS_URL], prefix="opsite-baseline")
    with server(uvicorn(port, "bench.baseline_asgi:application"), port=port, env=bench_env()):
        sockets = await open_sockets(f"ws://127.0.0.1:{port}/ws/restaurants/{slug}/orders/", args.sockets, cookie)

        async def publish(n: int) -> None:
            frame = {"seq": n + 1, "restaurant": slug, **event_body(n)}
            await layer.group_send(f"baseline.{slug}", {"type": "order.event", "text": json.dumps(frame)})

        result = await measure(sockets, args.events, args.rate, publish)
        await asyncio.gather(*(ws.close() for ws in sockets))
    await layer.flush()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--events", type=int, default=10)
    parser.add_argument("--rate", type=float, default=5.0)
    parser.add_argument("--server", choices=["uvicorn", "daphne"], default="uvicorn", help="ASGI server for opsite")
    parser.add_argument("--ws-workers", type=int, default=2, help="uvicorn workers of the scaled-out run")
    args = parser.parse_args()
    cpu_before, wall_before = os.times(), time.monotonic()
    fresh_database()
    from realtime.services import restaurant_create

    restaurant, token = restaurant_create(slug="fanout", name="Fan-out")
    cookie = session_cookie("bench-admin")
    print(f"{args.sockets} sockets in one restaurant, {args.events} events at {args.rate}/s, one {args.server} process")
    baseline = asyncio.run(run_baseline(args, cookie, restaurant.slug))
    ours = asyncio.run(run_opsite(args, cookie, restaurant.slug, token))
    runs = [("baseline (per-socket groups, pubsub layer)", baseline), (f"opsite (ingest + hub, {args.server})", ours)]
    if args.ws_workers > 1 and args.server == "uvicorn":
        scaled = asyncio.run(run_opsite(args, cookie, restaurant.slug, token, workers=args.ws_workers))
        runs.append((f"opsite (ingest + hub, uvicorn x{args.ws_workers})", scaled))
    for name, r in runs:
        print(
            f"  {name:45s} p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms  max {r['max_ms']:7.1f} ms  lost {r['lost']:.0f}"
        )
    cpu = os.times()
    share = (cpu.user - cpu_before.user + cpu.system - cpu_before.system) / (time.monotonic() - wall_before)
    print(f"  the measuring client used {share:.0%} of one core on average ({os.cpu_count()} cores, shared)")
    print(f"  p99 ratio opsite / baseline: {ours['p99_ms'] / baseline['p99_ms']:.2f}  (target: opsite p99 <= 50 ms)")


if __name__ == "__main__":
    main()
