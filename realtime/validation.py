"""Validation of order events as they arrive from the POS."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from common.validation import clean_batch, string_field

from .models import OrderEvent

EVENT_TYPES = frozenset(OrderEvent.Type.values)
MAX_DATA_BYTES = 16 * 1024
MAX_AMOUNT = Decimal("999999999999.99")
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")


@dataclass
class CleanEvent:
    type: str
    order_id: str
    total_amount: Decimal
    items_count: int
    occurred_at: datetime
    idempotency_key: str | None = None
    currency: str = ""
    payment_method: str = ""
    table: str = ""
    data: dict[str, Any] = field(default_factory=dict)


class InvalidEvents(Exception):
    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("invalid order events")
        self.fields = fields


def _moment(raw: Any, now: datetime) -> tuple[datetime | None, str]:
    """An ISO 8601 moment in UTC within the accepted skew of ``now``, or the reason it is not."""
    shape = "an ISO 8601 date and time, such as 2026-05-04T12:30:00+02:00"
    if not isinstance(raw, str) or len(raw) > 64:
        return None, shape
    try:
        parsed = parse_datetime(raw)  # None when malformed; ValueError for 2024-02-30, hour 25, +25:00
    except ValueError as exc:
        return None, f"{shape}: {exc}"
    if parsed is None:
        return None, shape
    try:
        moment = (parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, UTC)).astimezone(UTC)
    except (OverflowError, ValueError):
        return None, "outside the years 1 to 9999 in UTC"
    future, past = settings.OPSITE_EVENT_MAX_FUTURE_S, settings.OPSITE_EVENT_MAX_PAST_S
    if moment > now + timedelta(seconds=future):
        return None, f"more than {future:.0f} s in the future (OPSITE_EVENT_MAX_FUTURE_S); check the till's clock"
    if moment < now - timedelta(seconds=past):
        return None, f"more than {past:.0f} s in the past (OPSITE_EVENT_MAX_PAST_S)"
    return moment, ""


def _amount(raw: Any, errors: dict[str, str]) -> Decimal | None:
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        errors["total_amount"] = "required, a decimal number as string or number"
        return None
    try:
        amount = Decimal(str(raw))
    except InvalidOperation:
        errors["total_amount"] = "not a decimal number"
        return None
    if not amount.is_finite() or amount < 0 or amount > MAX_AMOUNT:
        errors["total_amount"] = "must be between 0 and 999999999999.99"
    elif amount.as_tuple().exponent < -2:  # type: ignore[operator]
        errors["total_amount"] = "at most 2 decimal places"
    return amount


def _occurred_at(raw: Any, errors: dict[str, str]) -> datetime:
    now = timezone.now()
    if raw is None:
        return now
    when, problem = _moment(raw, now)
    if problem or when is None:
        errors["occurred_at"] = problem
        return now
    return when


def _data(raw: Any, errors: dict[str, str]) -> dict[str, Any]:
    data = {} if raw is None else raw
    if not isinstance(data, dict):
        errors["data"] = "must be a JSON object"
        return {}
    if len(json.dumps(data, separators=(",", ":"))) > MAX_DATA_BYTES:
        errors["data"] = "at most 16 KB"
    return data


def clean_event(raw: Any) -> tuple[CleanEvent | None, dict[str, str]]:
    """Return the cleaned event, or None and the field errors."""
    if not isinstance(raw, dict):
        return None, {"": "must be a JSON object"}
    errors: dict[str, str] = {}
    unknown = set(raw) - {
        "type", "order_id", "idempotency_key", "total_amount", "currency",
        "items_count", "payment_method", "table", "occurred_at", "data",
    }  # fmt: skip
    for name in sorted(unknown):
        errors[name] = "unknown field"

    event_type = raw.get("type")
    if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
        errors["type"] = f"must be one of {', '.join(sorted(EVENT_TYPES))}"

    order_id = raw.get("order_id")
    if not isinstance(order_id, str) or not 1 <= len(order_id) <= 64:
        errors["order_id"] = "required, a string of 1 to 64 characters"

    key = raw.get("idempotency_key")
    if key is not None and (not isinstance(key, str) or not 1 <= len(key) <= 128):
        errors["idempotency_key"] = "a string of 1 to 128 characters"

    amount = _amount(raw.get("total_amount"), errors)

    items = raw.get("items_count")
    if isinstance(items, bool) or not isinstance(items, int) or not 0 <= items <= 100_000:
        errors["items_count"] = "required, an integer from 0 to 100000"

    currency = string_field(raw, "currency", 3, errors)
    if currency and not CURRENCY_RE.match(currency):
        errors["currency"] = "an ISO 4217 code such as EUR"
    payment_method = string_field(raw, "payment_method", 32, errors)
    table = string_field(raw, "table", 32, errors)

    occurred_at = _occurred_at(raw.get("occurred_at"), errors)

    data = _data(raw.get("data"), errors)

    if errors:
        return None, errors
    assert isinstance(event_type, str) and isinstance(order_id, str) and amount is not None
    assert isinstance(items, int)
    return (
        CleanEvent(
            type=event_type,
            order_id=order_id,
            total_amount=amount,
            items_count=items,
            occurred_at=occurred_at,
            idempotency_key=key,
            currency=currency,
            payment_method=payment_method,
            table=table,
            data=data,
        ),
        {},
    )


def clean_events(payload: Any, *, max_batch: int) -> tuple[list[CleanEvent], bool]:
    """Clean one event or a list; return the events and whether a list was sent."""
    try:
        cleaned, errors, is_batch = clean_batch(payload, limit=max_batch, noun="event", clean_one=clean_event)
    except ValueError as exc:
        raise InvalidEvents({"": str(exc)}) from exc
    if errors:
        raise InvalidEvents(errors)
    return cleaned, is_batch
