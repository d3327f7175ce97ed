"""Query statistics: every statement timed through Django's execute wrappers.

Per request: count and time (on the request's state). Per fingerprint (the statement with its
literals and IN-lists folded): count, total and max time per minute, merged across processes
like request traffic; a catalogue row per fingerprint with the normalized statement only. No
parameter value and no literal is ever kept (they hold session keys, password hashes, tokens):
EXPLAIN on demand plans the normalized statement with placeholders, as a generic plan.
Nothing here talks to a database or Redis on the request path.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from common.background import BackgroundLoop
from common.context import comment_sql, current_request
from common.redis import get_redis, redis_key
from monitoring.requests.models import QueryFingerprint

log = logging.getLogger("opsite.queries")

KEEP_MINUTES = 70
_STRING = re.compile(r"'(?:[^']|'')*'")
_NUMBER = re.compile(r"\b\d+(?:\.\d+)?\b")
_IN_LIST = re.compile(r"\(\s*(?:%s|\?)(?:\s*,\s*(?:%s|\?))+\s*\)")
_SPACE = re.compile(r"\s+")
_observing_disabled = threading.local()


@contextlib.contextmanager
def unobserved() -> Iterator[None]:
    """Statements run inside are not counted: opsite's own bookkeeping and diagnostics (the
    statistics' flush, EXPLAIN, the index advisor) must not show up as the application's load."""
    before = getattr(_observing_disabled, "on", False)
    _observing_disabled.on = True
    try:
        yield
    finally:
        _observing_disabled.on = before


# "GROUP BY 1, 2" names select-list positions, not values: kept, or the statement means
# something else (and EXPLAIN of the normalized text fails).
_POSITIONS = re.compile(r"\b((?:GROUP|ORDER) BY )((?:\d+(?:\s+(?:ASC|DESC))?\s*,\s*)*\d+\b)", re.IGNORECASE)

_HIDE_DIGITS = str.maketrans("0123456789", "".join(chr(0xE000 + d) for d in range(10)))  # private use
_SHOW_DIGITS = {0xE000 + d: str(d) for d in range(10)}


# Django names each savepoint after its thread and a counter: one statement shape, not thousands.
_SAVEPOINT = re.compile(r'\b((?:RELEASE |ROLLBACK TO )?SAVEPOINT )"?[A-Za-z0-9_]+"?', re.IGNORECASE)


def normalize(sql: str) -> str:
    text = _SAVEPOINT.sub(r"\1?", sql)
    text = _STRING.sub("?", text)
    text = _POSITIONS.sub(lambda m: m.group(1) + m.group(2).translate(_HIDE_DIGITS), text)
    text = _NUMBER.sub("?", text).translate(_SHOW_DIGITS)
    text = _IN_LIST.sub("(...)", text)
    return _SPACE.sub(" ", text).strip()


def fingerprint_of(normalized: str) -> str:
    return hashlib.sha1(normalized.encode(), usedforsecurity=False).hexdigest()[:16]


_known: dict[str, tuple[str, str]] = {}  # raw sql -> (normalized, fingerprint); ORM statements repeat
_KNOWN_MAX = 4096


def identify(sql: str) -> tuple[str, str]:
    found = _known.get(sql)
    if found is None and _SAVEPOINT.match(sql):
        # every savepoint has a new name: one shape, and never a place in the cache of texts
        normalized = normalize(sql)
        return normalized, fingerprint_of(normalized)
    if found is None:
        normalized = normalize(sql)
        found = (normalized, fingerprint_of(normalized))
        if len(_known) < _KNOWN_MAX:
            _known[sql] = found
    return found


@dataclass
class QueryTally:
    count: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0


class QueryAggregator:
    """Per-process buffer of per-fingerprint stats, flushed with the traffic flush."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[tuple[int, str], QueryTally] = {}
        self._samples: dict[str, str] = {}  # fp -> normalized statement
        self._n_plus_one: dict[tuple[int, str, str], int] = defaultdict(int)  # (minute, route, fp) -> hits
        self.loop = BackgroundLoop("opsite-query-flush", self.flush, lambda: settings.OPSITE_METRICS_FLUSH_S)

    def add(self, sql: str, ms: float) -> None:
        normalized, fp = identify(sql)
        key = (int(time.time()) // 60, fp)
        with self._lock:
            tally = self._pending.get(key)
            if tally is None:
                tally = self._pending[key] = QueryTally()
            tally.count += 1
            tally.total_ms += ms
            tally.max_ms = max(tally.max_ms, ms)
            if fp not in self._samples:
                self._samples[fp] = normalized
        self.loop.ensure_running()

    def add_n_plus_one(self, route: str, sql: str) -> str:
        normalized, fp = identify(sql)
        with self._lock:
            self._n_plus_one[(int(time.time()) // 60, route, fp)] += 1
            self._samples.setdefault(fp, normalized)
        self.loop.ensure_running()
        return fp

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
            samples, self._samples = self._samples, {}
            n_plus_one, self._n_plus_one = dict(self._n_plus_one), defaultdict(int)
        if not pending and not n_plus_one:
            return
        with unobserved():
            try:
                get_query_store().add(pending, n_plus_one)
                _catalogue(samples, n_plus_one)
            except Exception as exc:
                log.warning("could not flush query statistics: %s", exc)


def _catalogue(samples: dict[str, str], n_plus_one: dict[tuple[int, str, str], int]) -> None:
    from django.utils import timezone

    if not samples:
        return
    now = timezone.now()
    flagged = {fp: route for (_, route, fp) in n_plus_one}
    rows = [
        QueryFingerprint(
            fingerprint=fp, normalized=normalized[:8000], first_seen=now, last_seen=now,
            n_plus_one_route=flagged.get(fp, ""),
        )
        for fp, normalized in samples.items()
    ]  # fmt: skip
    QueryFingerprint.objects.bulk_create(
        rows, update_conflicts=True, unique_fields=["fingerprint"], update_fields=["last_seen"]
    )
    for fp, route in flagged.items():
        QueryFingerprint.objects.filter(fingerprint=fp).update(n_plus_one_route=route, last_n_plus_one=now)


class LocalQueryStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.minutes: dict[int, dict[str, QueryTally]] = defaultdict(dict)
        self.n_plus_one: dict[int, dict[str, int]] = defaultdict(dict)

    def add(self, pending: dict[tuple[int, str], QueryTally], n_plus_one: dict[tuple[int, str, str], int]) -> None:
        with self._lock:
            for (minute, fp), tally in pending.items():
                into = self.minutes[minute].setdefault(fp, QueryTally())
                into.count += tally.count
                into.total_ms += tally.total_ms
                into.max_ms = max(into.max_ms, tally.max_ms)
            for (minute, route, fp), hits in n_plus_one.items():
                key = f"{route}|{fp}"
                self.n_plus_one[minute][key] = self.n_plus_one[minute].get(key, 0) + hits
            oldest = int(time.time()) // 60 - KEEP_MINUTES
            for table in (self.minutes, self.n_plus_one):
                for minute in [m for m in table if m < oldest]:
                    del table[minute]

    def read(self, first: int, last: int) -> tuple[dict[str, QueryTally], dict[str, int]]:
        totals: dict[str, QueryTally] = defaultdict(QueryTally)
        flagged: dict[str, int] = defaultdict(int)
        with self._lock:
            for minute in range(first, last + 1):
                for fp, t in self.minutes.get(minute, {}).items():
                    into = totals[fp]
                    into.count += t.count
                    into.total_ms += t.total_ms
                    into.max_ms = max(into.max_ms, t.max_ms)
                for key, hits in self.n_plus_one.get(minute, {}).items():
                    flagged[key] += hits
        return dict(totals), dict(flagged)


class RedisQueryStore:
    def add(self, pending: dict[tuple[int, str], QueryTally], n_plus_one: dict[tuple[int, str, str], int]) -> None:
        client = get_redis()
        assert client is not None
        ttl = KEEP_MINUTES * 60
        pipe = client.pipeline(transaction=False)
        for (minute, fp), tally in pending.items():
            counts, maxima = redis_key("qs", minute), redis_key("qsmax", minute)
            pipe.hincrby(counts, f"{fp}:n", tally.count)
            pipe.hincrby(counts, f"{fp}:us", round(tally.total_ms * 1000))
            pipe.zadd(maxima, {fp: tally.max_ms}, gt=True)
            pipe.expire(counts, ttl)
            pipe.expire(maxima, ttl)
        for (minute, route, fp), hits in n_plus_one.items():
            key = redis_key("np", minute)
            pipe.hincrby(key, f"{route}|{fp}", hits)
            pipe.expire(key, ttl)
        pipe.execute()

    def read(self, first: int, last: int) -> tuple[dict[str, QueryTally], dict[str, int]]:
        client = get_redis()
        assert client is not None
        pipe = client.pipeline(transaction=False)
        span = range(first, last + 1)
        for minute in span:
            pipe.hgetall(redis_key("qs", minute))
            pipe.zrange(redis_key("qsmax", minute), 0, -1, withscores=True)
            pipe.hgetall(redis_key("np", minute))
        replies = pipe.execute()
        totals: dict[str, QueryTally] = defaultdict(QueryTally)
        flagged: dict[str, int] = defaultdict(int)
        for i in range(len(span)):
            counts, maxima, np_hits = replies[3 * i : 3 * i + 3]
            for field_name, value in counts.items():
                fp, kind = str(field_name).rsplit(":", 1)
                if kind == "n":
                    totals[fp].count += int(value)
                else:
                    totals[fp].total_ms += int(value) / 1000
            for fp, score in maxima:
                totals[str(fp)].max_ms = max(totals[str(fp)].max_ms, float(score))
            for key, hits in np_hits.items():
                flagged[str(key)] += int(hits)
        return dict(totals), dict(flagged)


_store: LocalQueryStore | RedisQueryStore | None = None
_aggregator = QueryAggregator()


def get_query_store() -> LocalQueryStore | RedisQueryStore:
    global _store
    if _store is None:
        _store = RedisQueryStore() if settings.REDIS_URL else LocalQueryStore()
    return _store


def get_aggregator() -> QueryAggregator:
    return _aggregator


def observe(
    execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]
) -> Any:  # the execute-wrapper signature Django calls
    if getattr(_observing_disabled, "on", False):
        return execute(sql, params, many, context)
    started = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        ms = (time.perf_counter() - started) * 1000
        state = current_request.get()
        if state is not None:
            state.count_statement(sql, ms)
        if ms >= settings.OPSITE_SLOW_QUERY_MS:
            log.warning(
                "slow query %.1f ms request_id=%s sql=%s",
                ms, state.request_id if state else "-", normalize(sql)[:500],
            )  # fmt: skip
        rate = settings.OPSITE_QUERY_SAMPLE_RATE
        if rate >= 1 or random.random() < rate:
            _aggregator.add(sql, ms)


def install_observer(connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    """Connected to ``connection_created``: every new connection gets the observer once, and
    (innermost, so the observer and its fingerprints see the statement without it) the trace
    comment when OPSITE_SQL_COMMENTS is on."""
    if observe not in connection.execute_wrappers:
        connection.execute_wrappers.append(observe)
    if settings.OPSITE_SQL_COMMENTS and comment_sql not in connection.execute_wrappers:
        connection.execute_wrappers.append(comment_sql)


SORTS = {
    "total": lambda t: t.total_ms,
    "mean": lambda t: t.total_ms / t.count if t.count else 0.0,
    "count": lambda t: t.count,
}


def top_queries(minutes: int, limit: int = 20, *, sort: str = "total", last_minute: int | None = None
                ) -> list[dict[str, Any]]:  # fmt: skip
    """The heaviest fingerprints over the ``minutes`` up to ``last_minute`` (epoch minutes; now
    by default), by total time, mean time or count, with their text from the catalogue and
    their share of the window's total time."""
    return top_queries_by(minutes, limit, sorts=(sort,), last_minute=last_minute)[sort]


def top_queries_by(minutes: int, limit: int, *, sorts: Iterable[str], last_minute: int | None = None
                   ) -> dict[str, list[dict[str, Any]]]:  # fmt: skip
    """``top_queries`` for several sorts from one read of the store and one of the catalogue."""
    last = int(time.time()) // 60 if last_minute is None else last_minute
    totals, _ = get_query_store().read(last - minutes + 1, last)
    all_ms = sum(t.total_ms for t in totals.values()) or 1.0
    heaviest = {sort: sorted(totals.items(), key=lambda item: SORTS[sort](item[1]), reverse=True)[:limit]
                for sort in sorts}  # fmt: skip
    fingerprints = {fp for rows in heaviest.values() for fp, _ in rows}
    texts = dict(QueryFingerprint.objects.filter(fingerprint__in=fingerprints).values_list("fingerprint", "normalized"))
    return {
        sort: [
            {
                "fingerprint": fp,
                "sql": texts.get(fp, ""),
                "count": t.count,
                "total_ms": round(t.total_ms, 2),
                "mean_ms": round(t.total_ms / t.count, 3) if t.count else 0.0,
                "max_ms": round(t.max_ms, 2),
                "share_pct": round(100 * t.total_ms / all_ms, 1),
            }
            for fp, t in rows
        ]
        for sort, rows in heaviest.items()
    }


def n_plus_one_suspects(minutes: int, *, last_minute: int | None = None) -> list[dict[str, Any]]:
    last = int(time.time()) // 60 if last_minute is None else last_minute
    _, flagged = get_query_store().read(last - minutes + 1, last)
    rows = []
    for key, hits in sorted(flagged.items(), key=lambda item: item[1], reverse=True):
        route, fp = key.rsplit("|", 1)
        rows.append({"route": route, "fingerprint": fp, "requests": hits})
    return rows


_PLACEHOLDER = re.compile(r"%s|\?")


def generic_plan_rows(cursor: Any, normalized: str, *, options: str = "") -> list[tuple[Any, ...]]:
    """``EXPLAIN [options]`` of a normalized statement on Postgres, as a generic plan: every
    folded literal and parameter a placeholder of a prepared statement planned under
    ``plan_cache_mode = force_generic_plan``. Run inside the caller's transaction."""
    sql = normalized.replace("(...)", "(?)")
    count = len(_PLACEHOLDER.findall(sql))
    numbered = iter(range(1, count + 1))
    prepared = _PLACEHOLDER.sub(lambda _: f"${next(numbered)}", sql)
    name = f"opsite_explain_{threading.get_ident()}"
    cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
    cursor.execute(f"PREPARE {name} AS {prepared}")
    try:
        args = ", ".join(["NULL"] * count)
        cursor.execute(f"EXPLAIN {options} EXECUTE {name}" + (f"({args})" if count else ""))
        return list(cursor.fetchall())
    finally:
        cursor.execute(f"DEALLOCATE {name}")  # prepared statements outlive a rollback


def explain(normalized: str, *, timeout_ms: int = 2000) -> str:
    """EXPLAIN a normalized SELECT without any value: every folded literal and parameter becomes
    a placeholder, planned as a generic plan (Postgres: a prepared statement under
    ``plan_cache_mode = force_generic_plan``; SQLite: NULL parameters), in a transaction that is
    always rolled back, with a statement timeout."""
    if not normalized.lstrip().lower().startswith("select"):
        raise ValueError("only SELECT statements are explained")
    connection = connections["default"]

    class _Rollback(Exception):
        pass

    lines: list[str] = []
    try:
        with unobserved(), transaction.atomic(), connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
                lines = [" ".join(str(c) for c in row) for row in generic_plan_rows(cursor, normalized)]
            else:
                sql = normalized.replace("(...)", "(?)")
                count = len(_PLACEHOLDER.findall(sql))
                cursor.execute("EXPLAIN QUERY PLAN " + _PLACEHOLDER.sub("%s", sql), [None] * count)
                lines = [" ".join(str(c) for c in row) for row in cursor.fetchall()]
            raise _Rollback
    except _Rollback:
        pass
    return "\n".join(lines)
