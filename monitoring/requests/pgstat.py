"""Postgres' own statement statistics (pg_stat_statements), read as deltas between looks.

opsite never resets the view (other tools may rely on it): each read is compared with the
previous snapshot kept in the cache, and a counter that went down means someone else reset
it, in which case the current figures are the delta.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.cache import cache
from django.db import connections

SNAPSHOT_KEY = "pgss:previous"


def available(alias: str = "default") -> bool:
    conn = connections[alias]
    if conn.vendor != "postgresql":
        return False
    with conn.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'")
        if cursor.fetchone() is None:
            return False
        cursor.execute("SELECT current_setting('shared_preload_libraries')")
        row = cursor.fetchone()
    return bool(row) and "pg_stat_statements" in str(row[0])


def _read(alias: str) -> dict[str, dict[str, Any]]:
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "SELECT queryid::text, left(query, 2000), calls, total_exec_time, rows FROM pg_stat_statements "
            "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND queryid IS NOT NULL"
        )
        return {
            qid: {"query": query, "calls": int(calls), "total_ms": float(total), "rows": int(rows)}
            for qid, query, calls, total, rows in cursor.fetchall()
        }


def statement_deltas(*, alias: str = "default", limit: int = 20) -> dict[str, Any] | None:
    """The heaviest statements since the previous call (by time), or None without the extension."""
    if not available(alias):
        return None
    now = time.time()
    current = _read(alias)
    previous = cache.get(SNAPSHOT_KEY)
    cache.set(SNAPSHOT_KEY, {"at": now, "rows": current}, timeout=7 * 24 * 3600)
    if previous is None:
        return {"since": None, "statements": []}
    before: dict[str, dict[str, Any]] = previous["rows"]
    deltas = []
    for qid, stats in current.items():
        old = before.get(qid)
        if old is not None and stats["calls"] >= old["calls"]:
            calls, total, rows = (
                stats["calls"] - old["calls"],
                stats["total_ms"] - old["total_ms"],
                stats["rows"] - old["rows"],
            )
        else:  # new statement, or the view was reset since: all of it is new
            calls, total, rows = stats["calls"], stats["total_ms"], stats["rows"]
        if calls > 0:
            deltas.append({"queryid": qid, "query": stats["query"], "calls": calls, "total_ms": round(total, 3),
                           "mean_ms": round(total / calls, 4), "rows": rows})  # fmt: skip
    deltas.sort(key=lambda d: d["total_ms"], reverse=True)
    return {"since": previous["at"], "seconds": round(now - previous["at"], 1), "statements": deltas[:limit]}
