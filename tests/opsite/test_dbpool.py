"""The pool lends a connection handed back a moment ago without checking it, and checks (and
replaces, when dead) one that has sat idle."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from psycopg_pool import ConnectionPool

from common import dbpool

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every real check the idle-aware check makes (an empty query to the server)."""
    made: list[Any] = []
    real = ConnectionPool.check_connection

    def counted(conn: Any) -> None:
        made.append(conn)
        real(conn)

    monkeypatch.setattr(dbpool, "ConnectionPool", type("Counted", (), {"check_connection": staticmethod(counted)}))
    monkeypatch.setattr(dbpool, "CHECK_AFTER_IDLE_S", 0.3)
    return made


@pytest.fixture
def pool(needs_postgres: None) -> Iterator[ConnectionPool]:
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params["autocommit"] = True
    with ConnectionPool(
        kwargs=params, min_size=1, max_size=1, timeout=5, check=dbpool.check_if_idle, reset=dbpool.note_returned
    ) as made:
        yield made


def _terminate(pid: int) -> None:
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    with psycopg.connect(**params, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])


@pytest.mark.django_db(transaction=True)
def test_a_connection_handed_back_a_moment_ago_is_lent_without_a_round_trip(pool, checks):
    with pool.connection() as conn:  # a new connection, never handed back yet: checked
        conn.execute("SELECT 1")
    assert len(checks) == 1
    for _ in range(3):
        with pool.connection() as conn:
            conn.execute("SELECT 1")
    assert len(checks) == 1


@pytest.mark.django_db(transaction=True)
def test_an_idle_connection_is_checked_and_a_dead_one_replaced(pool, checks):
    with pool.connection() as conn:
        pid = conn.info.backend_pid
    _terminate(pid)
    time.sleep(dbpool.CHECK_AFTER_IDLE_S + 0.2)
    with pool.connection() as conn:  # without the check this would be the dead one
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.info.backend_pid != pid
    assert len(checks) >= 1


@pytest.mark.django_db(transaction=True)
def test_the_projects_pool_uses_the_idle_check_and_survives_a_dropped_connection(needs_postgres):
    """Django's own pool, as every process has it: a query after the server dropped the
    pooled connection (a restart, a failover) is answered, not failed."""
    get_user_model().objects.count()
    pool = connection.pool
    assert pool is not None and pool._check is dbpool.check_if_idle
    pid = connection.connection.info.backend_pid
    connection.close()  # back to the pool, as at the end of a request
    _terminate(pid)
    time.sleep(dbpool.CHECK_AFTER_IDLE_S + 0.2)
    assert get_user_model().objects.count() >= 0
    assert connection.connection.info.backend_pid != pid


@pytest.mark.django_db(transaction=True)
def test_a_connection_the_server_ended_a_moment_after_it_came_back_is_replaced(pool, checks):
    """Handed back just now, then ended by the server (a restart, pg_terminate_backend): the
    pool does not lend it, though it has not sat idle for long."""
    with pool.connection() as conn:
        pid = conn.info.backend_pid
    checks.clear()
    _terminate(pid)
    time.sleep(0.1)  # the server's goodbye reaches the socket
    with pool.connection() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.info.backend_pid != pid
    assert len(checks) >= 1
