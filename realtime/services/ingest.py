"""Order events in: validated, numbered gap-free per restaurant, committed, then broadcast."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.db import IntegrityError, connection, models, transaction
from django.db.models import Field

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


NUMBERED = ("id", "restaurant", "seq", "epoch")  # written by the statement itself, not sent


def _cast_type(field: Field[Any, Any]) -> str:
    # Text for strings: an assignment cast into varchar(n) refuses a longer value, where an
    # explicit cast to varchar(n) would cut it silently.
    return "text" if isinstance(field, models.CharField) else str(field.db_type(connection))


@dataclass(frozen=True)
class _NumberedInsert:
    sql: str  # with {rows} where the rows' placeholders go
    row: str  # one row's placeholders
    fields: tuple[Field[Any, Any], ...]  # sent per row, in the order of ``row``


@lru_cache(maxsize=1)
def _numbered_insert() -> _NumberedInsert:
    """The statement that takes the seqs and writes the rows at once (PostgreSQL): the counter
    is advanced in a data-modifying CTE whose row lock is held to the statement's end, and each
    row's seq is the new counter minus its distance from the batch's end."""
    quote = connection.ops.quote_name
    sent = tuple(f for f in OrderEvent._meta.concrete_fields if f.name not in NUMBERED)
    columns = ", ".join(quote(f.column) for f in sent)
    picked = ", ".join(f"v.{quote(f.column)}" for f in sent)
    # Names from the models' own metadata, quoted; every value is a parameter.
    sql = (
        f"WITH r AS (UPDATE {quote(Restaurant._meta.db_table)} SET last_seq = last_seq + %s WHERE id = %s"  # noqa: S608
        f" RETURNING last_seq, epoch)"
        f" INSERT INTO {quote(OrderEvent._meta.db_table)} (restaurant_id, seq, epoch, {columns})"
        f" SELECT %s, r.last_seq - %s + v.ord, r.epoch, {picked}"
        f" FROM r CROSS JOIN (VALUES {{rows}}) AS v(ord, {columns})"
        f" RETURNING id, seq, epoch"
    )
    row = "(%s::bigint, " + ", ".join(f"%s::{_cast_type(f)}" for f in sent) + ")"
    return _NumberedInsert(sql=sql, row=row, fields=sent)


def _insert_numbered(restaurant: Restaurant, rows: list[OrderEvent]) -> None:
    """Number and store ``rows`` in one statement; fills their id, seq and epoch. Outside a
    transaction this is one round trip with no BEGIN or COMMIT, and it is atomic by itself: a
    refused row leaves the counter as it was."""
    insert = _numbered_insert()
    params: list[Any] = [len(rows), restaurant.pk, restaurant.pk, len(rows)]
    for ordinal, row in enumerate(rows, start=1):
        params.append(ordinal)
        params.extend(f.get_db_prep_save(f.pre_save(row, True), connection) for f in insert.fields)
    with connection.cursor() as cursor:
        cursor.execute(insert.sql.format(rows=", ".join([insert.row] * len(rows))), params)
        stored = sorted(cursor.fetchall(), key=lambda r: r[1])
    if len(stored) != len(rows):  # the restaurant was deleted meanwhile
        raise Restaurant.DoesNotExist(f"restaurant {restaurant.pk} is gone")
    for row, (pk, seq, epoch) in zip(rows, stored, strict=True):
        row.pk, row.seq, row.epoch = pk, seq, epoch
        row._state.adding, row._state.db = False, connection.alias


def _store_numbered(restaurant: Restaurant, rows: list[OrderEvent]) -> None:
    if connection.vendor == "postgresql":
        _insert_numbered(restaurant, rows)
        return
    first_seq, epoch = _reserve_seqs(restaurant, len(rows))
    for offset, row in enumerate(rows):
        row.seq, row.epoch = first_seq + offset, epoch
    OrderEvent.objects.bulk_create(rows)


def _write_scope() -> AbstractContextManager[Any]:
    """PostgreSQL outside a transaction needs none: the rows and their seqs are one statement
    (no BEGIN or COMMIT sent). Elsewhere, and inside a caller's transaction (a savepoint, so a
    refused batch can be retried), the seqs and rows are written in a transaction of their own."""
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        return nullcontext()
    return transaction.atomic()


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

    created = [
        OrderEvent(
            restaurant=restaurant,
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
        for e in fresh
    ]
    if created:
        _store_numbered(restaurant, created)
        restaurant.last_seq, restaurant.epoch = created[-1].seq, created[-1].epoch

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
            with _write_scope():
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
                restaurant=restaurant, events=created, committed_at=time.time(), request_id=request_id, mark_later=True
            )
        )
    return result
