"""Slow requests kept for looking into: each over OPSITE_SLOW_REQUEST_MS is buffered in memory
on the request path and written in one insert every few seconds, off the request path; rows
older than OPSITE_SLOW_REQUEST_KEEP_DAYS go at most once an hour."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from common.background import BackgroundLoop
from common.context import RequestState

from .models import SlowRequest
from .queries import identify

log = logging.getLogger(__name__)

STATEMENTS_KEPT = 20
BUFFER_MAX = 500  # a burst beyond this in one flush period is counted in the log, not kept


class SlowRequestBuffer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: list[SlowRequest] = []
        self._dropped = 0
        self._pruned = 0.0
        self.loop = BackgroundLoop("opsite-slow-requests", self.flush, lambda: settings.OPSITE_METRICS_FLUSH_S)

    def add(self, *, state: RequestState, route: str, method: str, path: str, status: int, ms: float) -> None:
        row = SlowRequest(
            request_id=state.request_id, trace_id=state.trace_id, route=route[:300], method=method[:8],
            path=path[:500], status_code=status, duration_ms=round(ms, 2), queries=state.queries,
            query_ms=round(state.query_ms, 2), statements=statement_list(state.statements or {}),
            created_at=timezone.now(),
        )  # fmt: skip
        with self._lock:
            if len(self._rows) >= BUFFER_MAX:
                self._dropped += 1
                return
            self._rows.append(row)
        self.loop.ensure_running()

    def flush(self) -> None:
        with self._lock:
            rows, self._rows = self._rows, []
            dropped, self._dropped = self._dropped, 0
        if dropped:
            log.warning("%d slow requests not kept: more than %d in one flush period", dropped, BUFFER_MAX)
        if rows:
            SlowRequest.objects.bulk_create(rows)
        if time.monotonic() - self._pruned > 3600:
            self._pruned = time.monotonic()
            cutoff = timezone.now() - timedelta(days=settings.OPSITE_SLOW_REQUEST_KEEP_DAYS)
            SlowRequest.objects.filter(created_at__lt=cutoff).delete()


def statement_list(statements: dict[str, list[float]]) -> list[dict[str, Any]]:
    """The request's statements by time spent, as normalized text (no value is ever kept)."""
    merged: dict[str, dict[str, Any]] = {}
    for sql, (count, ms) in statements.items():
        normalized, fp = identify(sql)
        into = merged.setdefault(fp, {"fingerprint": fp, "sql": normalized[:2000], "count": 0, "ms": 0.0})
        into["count"] += int(count)
        into["ms"] += ms
    heaviest = sorted(merged.values(), key=lambda s: s["ms"], reverse=True)[:STATEMENTS_KEPT]
    for one in heaviest:
        one["ms"] = round(one["ms"], 3)
    return heaviest


buffer = SlowRequestBuffer()


def slow_requests_between(*, start: datetime, end: datetime, route: str = "", limit: int = 50) -> list[dict[str, Any]]:
    """The slowest kept requests of a time range (a point on the latency chart), slowest first."""
    rows = SlowRequest.objects.filter(created_at__gte=start, created_at__lt=end)
    if route:
        rows = rows.filter(route=route)
    return [
        {
            "id": row.pk, "request_id": row.request_id, "trace_id": row.trace_id, "route": row.route,
            "status": row.status_code, "ms": row.duration_ms, "queries": row.queries, "query_ms": row.query_ms,
            "at": row.created_at.isoformat(),
        }
        for row in rows.order_by("-duration_ms")[:limit]
    ]  # fmt: skip
