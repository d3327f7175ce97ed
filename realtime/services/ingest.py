"""Order events in: validated, numbered gap-free per restaurant, committed, then broadcast."""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.db import IntegrityError, connection, transaction

from ..models import OrderEvent, Restaurant
from ..series import count_ingested
from ..validation import CleanEvent
from .feed import events_publish

ATTEMPTS = 3


@dataclass(frozen=True)
class IngestResult:
    answers: list[dict[str, object]]  # one {"id","seq","restaurant"} per event sent, in order
    created: list[OrderEvent]

    @property
    def any_created(self) -> bool:
        return bool(self.created)


def _reserve_seqs(restaurant: Restaurant, count: int) -> tuple[int, str]:
    """Take ``count`` seqs under the restaurant row's lock; return the first and the epoch.

    The lock is held until commit, so concurrent writers for one restaurant queue here and
    a rolled-back batch gives its numbers back: the stream stays gap-free.
    """
    table = Restaurant._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET last_seq = last_seq + %s WHERE id = %s RETURNING last_seq, epoch",  # noqa: S608
            [count, restaurant.pk],
        )
        last_seq, epoch = cursor.fetchone()
    return last_seq - count + 1, epoch


def _ingest_once(restaurant: Restaurant, events: list[CleanEvent], trace_id: str) -> IngestResult:
    keys = {e.idempotency_key for e in events if e.idempotency_key}
    earlier = OrderEvent.objects.filter(restaurant=restaurant, idempotency_key__in=keys)
    known: dict[str, dict[str, object]] = {
        key: {"id": pk, "seq": seq, "restaurant": restaurant.slug}
        for key, pk, seq in earlier.values_list("idempotency_key", "pk", "seq")
        if key
    }
    fresh: list[CleanEvent] = []
    batch_keys: set[str] = set()
    for event in events:
        key = event.idempotency_key
        if key and (key in known or key in batch_keys):
            continue
        if key:
            batch_keys.add(key)
        fresh.append(event)

    created: list[OrderEvent] = []
    if fresh:
        first_seq, epoch = _reserve_seqs(restaurant, len(fresh))
        rows = [
            OrderEvent(
                restaurant=restaurant,
                seq=first_seq + offset,
                epoch=epoch,
                type=e.type,
                order_id=e.order_id,
                idempotency_key=e.idempotency_key,
                total_amount=e.total_amount,
                currency=e.currency,
                items_count=e.items_count,
                payment_method=e.payment_method,
                table=e.table,
                occurred_at=e.occurred_at,
                data=e.data,
                trace_id=trace_id,
            )
            for offset, e in enumerate(fresh)
        ]
        created = OrderEvent.objects.bulk_create(rows)
        restaurant.last_seq, restaurant.epoch = first_seq + len(fresh) - 1, epoch

    by_key = dict(known)
    fresh_answers = iter({"id": row.pk, "seq": row.seq, "restaurant": restaurant.slug} for row in created)
    answers: list[dict[str, object]] = []
    for event in events:
        key = event.idempotency_key
        if key and key in by_key:
            answers.append(by_key[key])
            continue
        answer = next(fresh_answers)
        if key:
            by_key[key] = answer
        answers.append(answer)
    return IngestResult(answers=answers, created=created)


def order_event_ingest(
    *, restaurant: Restaurant, events: list[CleanEvent], trace_id: str = "", request_id: str = ""
) -> IngestResult:
    """Store events all or nothing; broadcast the new ones once the transaction has committed.

    A repeated idempotency key answers with the first answer and is not stored or sent again.
    The events keep the sending request's trace id; the broadcast carries the moment of the
    commit and the request's ids, for the delivery-latency series.
    """
    for attempt in range(ATTEMPTS):
        try:
            with transaction.atomic():
                result = _ingest_once(restaurant, events, trace_id)
            break
        except IntegrityError:
            # Another writer stored the same idempotency key first; read it and answer as a repeat.
            if attempt == ATTEMPTS - 1:
                raise
    if result.created:
        created = result.created
        count_ingested([event.type for event in created])
        transaction.on_commit(
            lambda: events_publish(
                restaurant=restaurant, events=created, committed_at=time.time(), request_id=request_id
            )
        )
    return result
