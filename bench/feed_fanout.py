"""One restaurant, N staff sockets, events at a steady rate: publish -> receive latency.

opsite as it runs in production (the till's events through the HTTP tier, gunicorn x2,
committed to Postgres, one channel-layer message per socket process, fanned out by the
process's hub) on one uvicorn process and on `uvicorn --workers 2`, against the textbook
Channels feed (a group membership per socket on RedisPubSubChannelLayer, published straight to
the layer) on one uvicorn process. Every run is measured by the same client, apart from the
servers: bench/feed_listener.mjs (Node.js, `npm ci` installs its `ws`), whose CPU share is
printed. The first event of each run warms the processes and is reported apart.

    .venv/bin/python bench/feed_fanout.py [--sockets 1000] [--events 20] [--rate 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Callable

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


def event_body(n: int) -> dict[str, object]:
    return {"type": "order.created", "order_id": f"fan-{n}", "total_amount": "12.00", "items_count": 2,
            "data": {"t": time.time()}}  # fmt: skip


def listen_and_publish(
    ws_base: str, cookie: str, slug: str, args: argparse.Namespace, publish: Callable[[int], None]
) -> dict[str, float]:
    """Open the sockets in the listener, publish 1 + ``args.events`` events at ``args.rate``,
    and summarise what the listener timed (event 0 warms up and is reported apart)."""
    events = args.events + 1
    with Listener(ws_base, [slug], args.sockets, cookie) as listener:
        started = time.monotonic()
        for n in range(events):
            publish(n)
            time.sleep(max(0.0, started + (n + 1) / args.rate - time.monotonic()))
        result = listener.results(expected=events * args.sockets)
    measured = [ms for order_id, ms in result["samples"] if order_id != "fan-0"]
    warm = [ms for order_id, ms in result["samples"] if order_id == "fan-0"]
    return {
        "p50_ms": percentile(measured, 50),
        "p99_ms": percentile(measured, 99),
        "max_ms": max(measured, default=float("nan")),
        "warm_p99_ms": percentile(warm, 99),
        "lost": events * args.sockets - len(result["samples"]),
        "client_share": result["client_share"],
    }


def run_opsite(args: argparse.Namespace, cookie: str, slug: str, token: str, workers: int) -> dict[str, float]:
    ws_port, http_port = free_port(), free_port()
    with (
        server(uvicorn(ws_port, workers=workers), port=ws_port, env=bench_env()),
        server(gunicorn(http_port, workers=2), port=http_port, env=bench_env()) as http_url,
        httpx.Client(base_url=http_url, headers={"Authorization": f"Bearer {token}"}) as client,
    ):

        def publish(n: int) -> None:
            response = client.post("/api/v1/orders/events", json=event_body(n))
            assert response.status_code == 201, response.text

        return listen_and_publish(f"ws://127.0.0.1:{ws_port}", cookie, slug, args, publish)


def run_baseline(args: argparse.Namespace, cookie: str, slug: str) -> dict[str, float]:
    from _support import REDIS_URL
    from channels_redis.pubsub import RedisPubSubChannelLayer

    port = free_port()
    layer = RedisPubSubChannelLayer(hosts=[REDIS_URL], prefix="opsite-baseline")
    loop = asyncio.new_event_loop()
    try:
        with server(uvicorn(port, "bench.baseline_asgi:application"), port=port, env=bench_env()):

            def publish(n: int) -> None:
                frame = {"seq": n + 1, "restaurant": slug, **event_body(n)}
                message = {"type": "order.event", "text": json.dumps(frame)}
                loop.run_until_complete(layer.group_send(f"baseline.{slug}", message))

            return listen_and_publish(f"ws://127.0.0.1:{port}", cookie, slug, args, publish)
    finally:
        loop.run_until_complete(layer.flush())
        loop.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--events", type=int, default=20, help="measured events (one more warms up)")
    parser.add_argument("--rate", type=float, default=5.0)
    parser.add_argument("--ws-workers", type=int, default=2, help="uvicorn workers of the scaled-out run")
    args = parser.parse_args()
    fresh_database()
    from realtime.services import restaurant_create

    restaurant, token = restaurant_create(slug="fanout", name="Fan-out")
    cookie = session_cookie("bench-admin")
    print(f"{args.sockets} sockets in one restaurant, {args.events} events at {args.rate:g}/s "
          f"(+1 warming up), {os.cpu_count()} cores shared with the client")  # fmt: skip
    runs = [
        ("baseline (per-socket groups, pubsub layer)", run_baseline(args, cookie, restaurant.slug)),
        ("opsite (gunicorn ingest + hub, uvicorn)", run_opsite(args, cookie, restaurant.slug, token, 1)),
    ]
    if args.ws_workers > 1:
        scaled = run_opsite(args, cookie, restaurant.slug, token, args.ws_workers)
        runs.append((f"opsite (gunicorn ingest + hub, uvicorn x{args.ws_workers})", scaled))
    for name, r in runs:
        print(f"  {name:50s} p50 {r['p50_ms']:6.1f} ms  p99 {r['p99_ms']:6.1f} ms  max {r['max_ms']:6.1f} ms  "
              f"lost {r['lost']:.0f}  (warm-up event p99 {r['warm_p99_ms']:.1f} ms; "
              f"client {r['client_share']:.0%} of a core)")  # fmt: skip
    best = min(r["p99_ms"] for _, r in runs[1:])
    print(f"  p99 ratio best opsite / baseline: {best / runs[0][1]['p99_ms']:.2f}  (target: opsite p99 <= 50 ms)")


if __name__ == "__main__":
    main()
