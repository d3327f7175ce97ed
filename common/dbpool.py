"""The database pool's connection check, made only for a connection that has sat idle.

With CONN_HEALTH_CHECKS on, Django's pool checks every connection it lends: an empty query, one
more round trip on every request. A connection handed back a moment ago has just shown that it
works; one idle for longer than ``CHECK_AFTER_IDLE_S`` is checked before it is lent again, which
is where a database restart, a failover or a connection dropped by the network shows up.

Django builds the pool itself and passes its own check, so the idle-aware one takes its place
when the pool first lends a connection (``use_idle_check``, on ``connection_created``); should
that ever not happen, the pool keeps Django's check on every loan, never none.
"""

from __future__ import annotations

import time
from typing import Any

from psycopg_pool import ConnectionPool

CHECK_AFTER_IDLE_S = 1.0
_IDLE_SINCE = "_opsite_idle_since"


def note_returned(conn: Any) -> None:
    """The pool's ``reset`` callback: when the connection came back, idle."""
    setattr(conn, _IDLE_SINCE, time.monotonic())


def check_if_idle(conn: Any) -> None:
    """A pool ``check``: raises (and the pool replaces the connection) when a connection idle
    for a while no longer answers; lends one returned a moment ago without a round trip."""
    since = getattr(conn, _IDLE_SINCE, None)
    if since is None or time.monotonic() - since > CHECK_AFTER_IDLE_S:
        ConnectionPool.check_connection(conn)


def pool_options(*, max_size: int, timeout: float) -> dict[str, Any]:
    return {"min_size": 1, "max_size": max_size, "timeout": timeout, "reset": note_returned}


def use_idle_check(sender: Any, connection: Any, **kwargs: Any) -> None:
    """``connection_created`` receiver: the pool behind ``connection`` checks idle connections only."""
    pool = getattr(connection, "pool", None)
    if pool is not None and pool._check is ConnectionPool.check_connection:
        pool._check = check_if_idle
