"""Read replicas: the dashboard's and the stats selectors' reads go to a healthy replica;
writes, the live feed, and any read after a write in the same request go to the primary.

A replica is used only while it answers and lags less than ``OPSITE_REPLICA_MAX_LAG_S``
(checked at most every ``OPSITE_REPLICA_CHECK_S`` per process); otherwise reads fall back to
the primary and the ``replicas`` health check says so.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from django.conf import settings
from django.db import connections

from .context import current_request

P = ParamSpec("P")
T = TypeVar("T")

_replica_reads: ContextVar[bool] = ContextVar("opsite_replica_reads", default=False)

LAG_SQL = (
    "SELECT CASE WHEN NOT pg_is_in_recovery() THEN 0 "
    "WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
    "ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0) END"
)


def replica_aliases() -> list[str]:
    return list(settings.OPSITE_REPLICA_ALIASES)


@dataclass
class ReplicaState:
    ok: bool
    lag_s: float | None
    detail: str
    checked_at: float


class ReplicaMonitor:
    def __init__(self) -> None:
        self._states: dict[str, ReplicaState] = {}
        self._lock = threading.Lock()

    def check(self, alias: str) -> ReplicaState:
        started = time.monotonic()
        conn = connections[alias]
        try:
            with conn.cursor() as cursor:
                cursor.execute(LAG_SQL)
                row = cursor.fetchone()
            lag = float(row[0]) if row else 0.0
            if lag > settings.OPSITE_REPLICA_MAX_LAG_S:
                state = ReplicaState(False, lag, f"lagging {lag:.1f} s", started)
            else:
                state = ReplicaState(True, lag, "", started)
        except Exception as exc:
            state = ReplicaState(False, None, f"unreachable: {type(exc).__name__}: {exc}"[:300], started)
        finally:
            conn.close()
        with self._lock:
            self._states[alias] = state
        return state

    def state(self, alias: str) -> ReplicaState:
        known = self._states.get(alias)
        if known is None or time.monotonic() - known.checked_at > settings.OPSITE_REPLICA_CHECK_S:
            return self.check(alias)
        return known

    def pick(self) -> str | None:
        for alias in replica_aliases():
            if self.state(alias).ok:
                return alias
        return None


monitor = ReplicaMonitor()


@contextmanager
def replica_reads() -> Iterator[None]:
    """Reads inside may go to a replica (unless the request already wrote)."""
    token = _replica_reads.set(True)
    try:
        yield
    finally:
        _replica_reads.reset(token)


def on_replica(func: Callable[P, T]) -> Callable[P, T]:
    """For selectors whose readers can live with a replica's small lag (dashboards, stats)."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        with replica_reads():
            return func(*args, **kwargs)

    return wrapper


class ReplicaRouter:
    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        if not _replica_reads.get() or not replica_aliases():
            return None
        state = current_request.get()
        if state is not None and state.wrote:
            return None  # read-your-writes: after a write this request stays on the primary
        return monitor.pick()

    def db_for_write(self, model: Any, **hints: Any) -> str:
        state = current_request.get()
        if state is not None:
            state.wrote = True
        return "default"

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return db == "default"
