"""Request traffic per route and minute: counted in-process, merged across processes.

Each process counts requests in memory (a dict update under a lock, no I/O) and a background
thread flushes the counts every few seconds in one Redis pipeline. Every minute has one hash
per route, so any number of processes on any number of hosts add into the same numbers, and a
window (1 m, 5 m, 1 h) is the merge of its minutes. Without Redis (the embedded default, one
web process) the minutes stay in the process.

One function, ``stats_of``, turns merged tallies into rate, error rates and percentiles (from
the merged latency histogram, never an average of percentiles). Its readers take their
tallies from one of two stores, each for a reason:

- the shared minutes (``window``): the whole installation, current to the last flush (a few
  seconds). Read by the live tiles and ``/health/stats`` (``traffic_summary``), ``/metrics``
  and the alert rules at overall scope;
- the node reports (``monitoring.nodes.reports.reported_traffic``): each process reports
  its own tallies of its last minutes with its host, so figures per host exist. Read by the
  alert rules at host scope and by the minute snapshots (host rows and the installation's
  row, which is the sum of the hosts', so the history adds up); hour and six-hour rollups
  merge the snapshots' histograms and go through ``stats_of`` again.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.conf import settings

from common.background import BackgroundLoop
from common.redis import get_redis, redis_key
from monitoring.requests.histogram import bucket_of, quantiles

log = logging.getLogger(__name__)

KEEP_MINUTES = 70  # enough for the 1 h window
OWN_MINUTES = 3  # what a process keeps of its own tallies for its node report
ALL_ROUTES = "*"


@dataclass
class Tally:
    """What one route saw in one minute."""

    count: int = 0
    errors: int = 0  # 5xx answers
    client_errors: int = 0  # 4xx
    slow: int = 0
    buckets: Counter[int] = field(default_factory=Counter)
    exceptions: Counter[str] = field(default_factory=Counter)

    def add(self, other: Tally) -> None:
        self.count += other.count
        self.errors += other.errors
        self.client_errors += other.client_errors
        self.slow += other.slow
        self.buckets.update(other.buckets)
        self.exceptions.update(other.exceptions)

    def as_fields(self) -> dict[str, int]:
        fields = {"n": self.count, "e": self.errors, "c": self.client_errors, "s": self.slow}
        fields.update({f"b{index}": n for index, n in self.buckets.items()})
        fields.update({f"x{name}": n for name, n in self.exceptions.items()})
        return {k: v for k, v in fields.items() if v}

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> Tally:
        tally = cls()
        for key, raw in fields.items():
            value = int(raw)
            kind, rest = key[0], key[1:]
            if kind == "n":
                tally.count = value
            elif kind == "e":
                tally.errors = value
            elif kind == "c":
                tally.client_errors = value
            elif kind == "s":
                tally.slow = value
            elif kind == "b":
                tally.buckets[int(rest)] = value
            elif kind == "x":
                tally.exceptions[rest] = value
        return tally


Batch = dict[tuple[int, str], Tally]


class TrafficStore(Protocol):
    def add(self, batch: Batch) -> None: ...

    def minutes(self, first: int, last: int) -> dict[int, dict[str, Tally]]: ...


class LocalTrafficStore:
    def __init__(self) -> None:
        self._minutes: dict[int, dict[str, Tally]] = defaultdict(dict)
        self._lock = threading.Lock()

    def add(self, batch: Batch) -> None:
        with self._lock:
            for (minute, route), tally in batch.items():
                self._minutes[minute].setdefault(route, Tally()).add(tally)
            oldest = int(time.time() // 60) - KEEP_MINUTES
            for minute in [m for m in self._minutes if m < oldest]:
                del self._minutes[minute]

    def minutes(self, first: int, last: int) -> dict[int, dict[str, Tally]]:
        with self._lock:
            return {
                m: {route: _copy(t) for route, t in routes.items()}
                for m, routes in self._minutes.items()
                if first <= m <= last
            }


def _copy(tally: Tally) -> Tally:
    fresh = Tally()
    fresh.add(tally)
    return fresh


class RedisTrafficStore:
    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    def _route_set(self, minute: int) -> str:
        return redis_key(self.namespace, minute, "routes")

    def _hash(self, minute: int, route: str) -> str:
        return redis_key(self.namespace, minute, "r", route)

    def add(self, batch: Batch) -> None:
        client = get_redis()
        assert client is not None
        ttl = KEEP_MINUTES * 60
        pipe = client.pipeline(transaction=False)
        for (minute, route), tally in batch.items():
            key = self._hash(minute, route)
            for name, n in tally.as_fields().items():
                pipe.hincrby(key, name, n)
            pipe.expire(key, ttl)
            pipe.sadd(self._route_set(minute), route)
            pipe.expire(self._route_set(minute), ttl)
        pipe.execute()

    def minutes(self, first: int, last: int) -> dict[int, dict[str, Tally]]:
        client = get_redis()
        assert client is not None
        span = list(range(first, last + 1))
        pipe = client.pipeline(transaction=False)
        for minute in span:
            pipe.smembers(self._route_set(minute))
        routes_per_minute = pipe.execute()
        pipe = client.pipeline(transaction=False)
        wanted = [(m, str(r)) for m, routes in zip(span, routes_per_minute, strict=True) for r in routes]
        for minute, route in wanted:
            pipe.hgetall(self._hash(minute, route))
        result: dict[int, dict[str, Tally]] = defaultdict(dict)
        for (minute, route), fields in zip(wanted, pipe.execute(), strict=True):
            if fields:
                result[minute][route] = Tally.from_fields(fields)
        return result


class TrafficRecorder:
    """The per-process buffer. ``record`` is on the request path: a few dict updates under an
    uncontended lock, no I/O; a background thread ships the tallies."""

    def __init__(self, store: TrafficStore, flush_every_s: float) -> None:
        self.store = store
        self.flush_every_s = flush_every_s
        self._pending: Batch = {}
        self._own: dict[int, Tally] = {}  # this process's requests per minute, all routes
        self._lock = threading.Lock()
        self.loop = BackgroundLoop("opsite-traffic-flush", self.flush, lambda: self.flush_every_s)

    def record(self, route: str, ms: float, status: int, *, slow: bool = False, exception: str = "") -> None:
        key = (int(time.time()) // 60, route)
        bucket = bucket_of(ms)
        with self._lock:
            tally = self._pending.get(key)
            if tally is None:
                tally = self._pending[key] = Tally()
            tally.count += 1
            tally.buckets[bucket] += 1
            # By the answer the client got: a view raising Http404 or PermissionDenied answered
            # 4xx, not an error of ours; exceptions are counted by type on their own below.
            if status >= 500:
                tally.errors += 1
            elif status >= 400:
                tally.client_errors += 1
            if slow:
                tally.slow += 1
            if exception:
                tally.exceptions[exception] += 1
        self.loop.ensure_running()

    def flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, {}
            for (minute, _route), tally in batch.items():
                self._own.setdefault(minute, Tally()).add(tally)
            oldest = int(time.time()) // 60 - OWN_MINUTES
            for minute in [m for m in self._own if m < oldest]:
                del self._own[minute]
        if not batch:
            return
        try:
            self.store.add(batch)
        except Exception as exc:
            log.warning("could not flush request traffic (%s); %d route-minutes kept for the next try", exc, len(batch))
            with self._lock:
                for key, tally in batch.items():
                    self._pending.setdefault(key, Tally()).add(tally)

    def own_minutes(self) -> dict[int, Tally]:
        """This process's tallies for the last few minutes (flushed ones), for its node report."""
        with self._lock:
            return {minute: _copy(t) for minute, t in self._own.items()}


REQUESTS = "rq"  # HTTP requests per route
FRONTEND = "fe"  # screen/action timings reported by the POS apps
FRONTEND_ERRORS = "fx"  # error reports from the POS apps, counted per minute
_recorders: dict[str, TrafficRecorder] = {}
_recorders_lock = threading.Lock()


def get_recorder(namespace: str = REQUESTS) -> TrafficRecorder:
    recorder = _recorders.get(namespace)
    if recorder is None:
        with _recorders_lock:
            recorder = _recorders.get(namespace)
            if recorder is None:
                store: TrafficStore = RedisTrafficStore(namespace) if settings.REDIS_URL else LocalTrafficStore()
                recorder = _recorders[namespace] = TrafficRecorder(store, settings.OPSITE_METRICS_FLUSH_S)
                atexit.register(recorder.flush)
    return recorder


def flush_all() -> None:
    for recorder in list(_recorders.values()):
        recorder.flush()


@dataclass
class WindowStats:
    requests: int
    rate_per_s: float
    error_rate: float
    client_error_rate: float
    slow: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    exceptions: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 2)

        return {
            "requests": self.requests,
            "rate_per_s": round(self.rate_per_s, 3),
            "error_rate": round(self.error_rate, 5),
            "client_error_rate": round(self.client_error_rate, 5),
            "slow": self.slow,
            "p50_ms": r(self.p50_ms),
            "p95_ms": r(self.p95_ms),
            "p99_ms": r(self.p99_ms),
            "exceptions": self.exceptions,
        }


def stats_of(tally: Tally, seconds: float) -> WindowStats:
    q = quantiles(tally.buckets, [0.5, 0.95, 0.99])
    n = tally.count
    return WindowStats(
        requests=n,
        rate_per_s=n / seconds if seconds else 0.0,
        error_rate=tally.errors / n if n else 0.0,
        client_error_rate=tally.client_errors / n if n else 0.0,
        slow=tally.slow,
        p50_ms=q[0.5],
        p95_ms=q[0.95],
        p99_ms=q[0.99],
        exceptions=dict(tally.exceptions),
    )


def window(minutes: int, *, namespace: str = REQUESTS, now: float | None = None) -> dict[str, WindowStats]:
    """Stats per route (and ``*`` for all) over the last ``minutes`` minutes, this one included."""
    now = time.time() if now is None else now
    last = int(now) // 60
    first = last - minutes + 1
    seconds = (minutes - 1) * 60 + (now - last * 60) or 1.0
    per_route: dict[str, Tally] = defaultdict(Tally)
    for routes in get_recorder(namespace).store.minutes(first, last).values():
        for route, tally in routes.items():
            per_route[route].add(tally)
    overall = Tally()
    for tally in per_route.values():
        overall.add(tally)
    result = {route: stats_of(t, seconds) for route, t in per_route.items()}
    result[ALL_ROUTES] = stats_of(overall, seconds)
    return result
