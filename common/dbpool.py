"""The database pool's connection check, made only where a connection may have died.

With CONN_HEALTH_CHECKS on, Django's pool checks every connection it lends: an empty query, one
more round trip on every request. Here a connection is checked before it is lent only when it
has sat idle for longer than ``CHECK_AFTER_IDLE_S`` (where a connection dropped by the network
shows up), or when the server has written to it while it sat in the pool: an idle connection
has nothing to read, so anything there is the server ending it (a restart, a failover,
``pg_terminate_backend``) — seen without a round trip, by asking the socket. A connection handed
back a moment ago, with nothing from the server since, is lent as it is.

Django builds the pool itself and passes its own check, so the idle-aware one takes its place
when the pool first lends a connection (``use_idle_check``, on ``connection_created``); should
that ever not happen, the pool keeps Django's check on every loan, never none.
"""

from __future__ import annotations

import select
import time
from typing import Any

from psycopg_pool import ConnectionPool

CHECK_AFTER_IDLE_S = 1.0
_IDLE_SINCE = "_opsite_idle_since"


def note_returned(conn: Any) -> None:
    """The pool's ``reset`` callback: when the connection came back, idle."""
    setattr(conn, _IDLE_SINCE, time.monotonic())


def _server_wrote(conn: Any) -> bool:
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def check_if_idle(conn: Any) -> None:
    """A pool ``check``: raises (and the pool replaces the connection) when a connection idle
    for a while, or one the server wrote to while it was idle, no longer answers; lends one
    returned a moment ago, with nothing from the server since, without a round trip."""
    since = getattr(conn, _IDLE_SINCE, None)
    if since is None or time.monotonic() - since > CHECK_AFTER_IDLE_S or _server_wrote(conn):
        ConnectionPool.check_connection(conn)


def pool_options(*, max_size: int, timeout: float) -> dict[str, Any]:
    return {"min_size": 1, "max_size": max_size, "timeout": timeout, "reset": note_returned}


def use_idle_check(sender: Any, connection: Any, **kwargs: Any) -> None:
    """``connection_created`` receiver: the pool behind ``connection`` checks idle connections only."""
    pool = getattr(connection, "pool", None)
    if pool is not None and pool._check is ConnectionPool.check_connection:
        pool._check = check_if_idle
