from __future__ import annotations

import pytest
from django.db import connection

from monitoring.requests.pgstat import SNAPSHOT_KEY, available, statement_deltas
from tests.conftest import IN_CI

pytestmark = pytest.mark.django_db


@pytest.fixture
def pg_stat_statements(needs_postgres):
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('shared_preload_libraries')")
        loaded = "pg_stat_statements" in cursor.fetchone()[0]
    if not loaded:
        if IN_CI:
            pytest.fail("CI=true needs Postgres with shared_preload_libraries = 'pg_stat_statements'")
        pytest.skip("pg_stat_statements is not loaded by this Postgres")
    with connection.cursor() as cursor:
        cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    from django.core.cache import cache

    cache.delete(SNAPSHOT_KEY)


def test_statement_statistics_are_read_as_deltas_without_resetting(pg_stat_statements, make_staff):
    assert available()
    first = statement_deltas()
    assert first == {"since": None, "statements": []}
    with connection.cursor() as cursor:
        for _ in range(7):
            cursor.execute("SELECT count(*) FROM realtime_restaurant WHERE slug <> %s", ["pgss-marker"])
    second = statement_deltas(limit=200)
    mine = [s for s in second["statements"] if "realtime_restaurant" in s["query"] and "<>" in s["query"]]
    assert mine and mine[0]["calls"] == 7 and mine[0]["mean_ms"] >= 0
    third = statement_deltas(limit=200)
    again = [s for s in third["statements"] if s["queryid"] == mine[0]["queryid"]]
    assert again == [], "a delta counts only what ran since the previous look"
    with connection.cursor() as cursor:
        cursor.execute("SELECT calls FROM pg_stat_statements WHERE queryid::text = %s", [mine[0]["queryid"]])
        assert cursor.fetchone()[0] >= 7, "the view itself was never reset"


def test_without_the_extension_there_is_nothing_to_read(needs_postgres):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'")
        installed = cursor.fetchone() is not None
    if installed:
        cursor = connection.cursor()
        cursor.execute("DROP EXTENSION pg_stat_statements")
    assert statement_deltas() is None
