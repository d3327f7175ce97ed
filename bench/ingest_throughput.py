"""Ingest throughput: order events persisted (gap-free seq, idempotency keys) and broadcast,
against plain INSERTs of the same rows from the same process, side by side.

    .venv/bin/python bench/ingest_throughput.py [--events 20000] [--batch 100] [--restaurants 10]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime

import httpx
from _support import bench_env, free_port, fresh_database, gunicorn, server


def payload(n: int, batch: int) -> list[dict[str, object]]:
    return [
        {"type": "order.created", "order_id": f"o{n}-{i}", "idempotency_key": f"k{n}-{i}", "total_amount": "12.30",
         "items_count": 2, "payment_method": "card", "table": "4"}
        for i in range(batch)
    ]  # fmt: skip


def plain_inserts(events: int, batch: int, restaurant_id: int) -> float:
    from django.db import connection, transaction

    sql = (
        "INSERT INTO realtime_orderevent (restaurant_id, seq, epoch, type, order_id, idempotency_key, total_amount, "
        'currency, items_count, payment_method, "table", occurred_at, received_at, data) '
        "VALUES (%s, %s, 'e', 'order.created', %s, %s, 12.30, '', 2, 'card', '4', %s, %s, '{}')"
    )
    started = time.perf_counter()
    seq = 0
    for n in range(events // batch):
        now = datetime.now(UTC)
        rows = []
        for i in range(batch):
            seq += 1
            rows.append((restaurant_id, seq, f"p{n}-{i}", f"pk{n}-{i}", now, now))
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(sql, rows)
    return events / (time.perf_counter() - started)


def service_ingest(events: int, batch: int, restaurants: list) -> float:
    from realtime.services import order_event_ingest
    from realtime.validation import clean_events

    started = time.perf_counter()
    for n in range(events // batch):
        cleaned, _ = clean_events(payload(n, batch), max_batch=500)
        order_event_ingest(restaurant=restaurants[n % len(restaurants)], events=cleaned)
    return events / (time.perf_counter() - started)


async def http_ingest(url: str, events: int, batch: int, tokens: list[str], concurrency: int) -> float:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(events // batch):
        queue.put_nowait(n)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            n = queue.get_nowait()
            token = tokens[n % len(tokens)]
            response = await client.post("/api/v1/orders/events", json=payload(100_000 + n, batch),
                                          headers={"Authorization": f"Bearer {token}"})  # fmt: skip
            assert response.status_code == 201, response.text

    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return events / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--restaurants", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers for the HTTP run")
    args = parser.parse_args()
    fresh_database()
    from realtime.models import OrderEvent
    from realtime.services import restaurant_create

    created = [restaurant_create(slug=f"r{i}", name=f"R{i}") for i in range(args.restaurants)]
    restaurants = [r for r, _ in created]
    tokens = [t for _, t in created]
    scratch, _ = restaurant_create(slug="plain", name="Plain inserts")

    baseline = plain_inserts(args.events, args.batch, scratch.pk)
    in_process = service_ingest(args.events, args.batch, restaurants)
    port = free_port()
    with server(gunicorn(port, workers=args.workers), port=port, env=bench_env()) as url:
        over_http = asyncio.run(http_ingest(url, args.events, args.batch, tokens, concurrency=args.workers * 2))
    ours = OrderEvent.objects.exclude(restaurant=scratch)
    unpublished = ours.filter(published_at__isnull=True).count()
    print(f"{args.events} events in batches of {args.batch} over {args.restaurants} restaurants (Postgres, Redis)")
    print(f"  baseline: plain INSERTs, same process          {baseline:9.0f} events/s")
    print(
        f"  opsite order_event_ingest(), same process     {in_process:9.0f} events/s  ratio {in_process / baseline:.2f}"
    )
    print(
        f"  opsite HTTP ingest, gunicorn x{args.workers}              {over_http:9.0f} events/s  ratio {over_http / baseline:.2f}"
    )
    print(f"  stored {ours.count()} events, {unpublished} not broadcast (target >= 1000 events/s, 0 not broadcast)")


if __name__ == "__main__":
    main()
