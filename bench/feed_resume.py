"""A board back after hours offline: how long until it has every missed event, in order.

10,000 events (by default) are ingested while no board is connected; then one board resumes
from seq 0 through a real uvicorn process. opsite's socket replays them itself, a page at a
time, right after its ``hello`` (``"resumed": true``). The baseline, side by side, is what a
board did before: a ``reset`` and the catch-up HTTP API paged 1,000 events at a time. Both
times run from the request to the last event received and checked (every seq, once, in order).

    .venv/bin/python bench/feed_resume.py [--events 10000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import httpx
import websockets
from _support import bench_env, free_port, fresh_database, http_origin, server, session_cookie, uvicorn


async def by_socket(port: int, slug: str, cookie: str, events: int) -> float:
    url = f"ws://127.0.0.1:{port}/ws/restaurants/{slug}/orders/?last_seq=0"
    started = time.perf_counter()
    async with websockets.connect(url, additional_headers={"Cookie": cookie}, origin=http_origin(url),
                                  max_queue=None, open_timeout=30) as ws:  # fmt: skip
        hello = json.loads(await ws.recv())
        assert hello["type"] == "hello" and hello["resumed"] is True, hello
        expected = 1
        while expected <= events:
            frame = json.loads(await ws.recv())
            if frame.get("type", "").startswith("order."):
                assert frame["seq"] == expected, (frame["seq"], expected)
                expected += 1
    return time.perf_counter() - started


async def by_http_pages(base: str, slug: str, cookie: str, events: int) -> float:
    started = time.perf_counter()
    after, seen = 0, 0
    async with httpx.AsyncClient(base_url=base, headers={"Cookie": cookie}, timeout=30) as client:
        while seen < events:
            response = await client.get(f"/api/v1/restaurants/{slug}/orders/events",
                                        params={"after_seq": after, "limit": 1000})  # fmt: skip
            response.raise_for_status()
            page = response.json()["events"]
            assert page, "the catch-up API ran out before every event was read"
            for event in page:
                assert event["seq"] == after + 1
                after = event["seq"]
            seen += len(page)
    return time.perf_counter() - started


def ingest(token: str, base: str, events: int) -> None:
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        for start in range(0, events, 500):
            batch = [{"type": "order.created", "order_id": f"r-{n}", "total_amount": "9.50", "items_count": 1}
                     for n in range(start, min(events, start + 500))]  # fmt: skip
            response = client.post("/api/v1/orders/events", json=batch)
            assert response.status_code in (200, 201, 207), response.text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    fresh_database()
    from realtime.services import restaurant_create

    restaurant, token = restaurant_create(slug="resume", name="Resume")
    cookie = session_cookie("bench-admin")
    port = free_port()
    with server(uvicorn(port), port=port, env=bench_env()) as base:
        ingest(token, base, args.events)
        socket_s = [asyncio.run(by_socket(port, restaurant.slug, cookie, args.events)) for _ in range(args.rounds)]
        http_s = [asyncio.run(by_http_pages(base, restaurant.slug, cookie, args.events)) for _ in range(args.rounds)]
    ours, baseline = statistics.median(socket_s), statistics.median(http_s)
    print(f"{args.events} missed events, one uvicorn process, median of {args.rounds} rounds")
    print(
        f"  baseline (reset + catch-up API, pages of 1000)   {baseline:6.2f} s   {args.events / baseline:8.0f} events/s"
    )
    print(f"  opsite (socket replay in pages after hello)      {ours:6.2f} s   {args.events / ours:8.0f} events/s")
    print(f"  ratio opsite / baseline: {ours / baseline:.2f}  (target: 10,000 events within 2 s)")


if __name__ == "__main__":
    main()
