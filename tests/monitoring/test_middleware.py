from __future__ import annotations

import json
import logging
import re

import pytest
from django.test import AsyncClient

from monitoring.models import QueryFingerprint
from monitoring.requests.queries import explain, get_aggregator, n_plus_one_suspects, normalize, top_queries
from monitoring.requests.traffic import (
    ALL_ROUTES,
    LocalTrafficStore,
    RedisTrafficStore,
    TrafficRecorder,
    get_recorder,
    window,
)

pytestmark = pytest.mark.django_db


def test_it_sets_request_id_and_timing_headers(client):
    response = client.get("/health/live")
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])
    assert re.fullmatch(r"app;dur=\d+\.\d\d", response["Server-Timing"])
    assert re.fullmatch(r"\d+\.\d\dms", response["X-Response-Time"])


def test_it_keeps_a_valid_inbound_request_id_and_replaces_a_bad_one(client):
    assert client.get("/health/live", HTTP_X_REQUEST_ID="pos-7f3a9c-0001")["X-Request-ID"] == "pos-7f3a9c-0001"
    replaced = client.get("/health/live", HTTP_X_REQUEST_ID="<script>")["X-Request-ID"]
    assert replaced != "<script>" and re.fullmatch(r"[0-9a-f]{32}", replaced)


async def test_it_works_on_the_async_path_too():
    response = await AsyncClient().get("/health/live", headers={"X-Request-ID": "async-req-0001"})
    assert response["X-Request-ID"] == "async-req-0001" and response["Server-Timing"].startswith("app;dur=")


def test_server_timing_reports_database_time(client, make_staff):
    staff = make_staff()
    client.force_login(staff.user)
    timing = client.get(f"/restaurants/{staff.restaurant.slug}/")["Server-Timing"]
    assert re.fullmatch(r"app;dur=[\d.]+, db;dur=[\d.]+", timing)


def test_slow_requests_are_logged_as_one_line_with_the_request_id(client, settings, caplog):
    settings.OPSITE_SLOW_REQUEST_MS = 0
    with caplog.at_level(logging.WARNING, logger="opsite.requests"):
        response = client.get("/health/live", HTTP_X_REQUEST_ID="slow-req-0001")
    records = [r for r in caplog.records if r.name == "opsite.requests"]
    assert len(records) == 1
    line = records[0].getMessage()
    assert '"request_id": "slow-req-0001"' in line and '"route": "GET /health/live"' in line
    assert '"status": 200' in line and '"queries": 0' in line
    assert response.status_code == 200


def test_log_records_carry_the_request_id(client, settings, caplog):
    settings.OPSITE_SLOW_REQUEST_MS = 0
    with caplog.at_level(logging.WARNING):
        client.get("/health/live", HTTP_X_REQUEST_ID="logged-req-01")
    assert any(getattr(r, "request_id", None) == "logged-req-01" for r in caplog.records)


@pytest.mark.urls("tests.monitoring.urls")
def test_routes_are_patterns_and_exceptions_are_counted(client):
    recorder = get_recorder()
    recorder.flush()
    before = window(1)
    client.get("/restaurants/anything/")  # login redirect: the route, not the path
    client.get("/no/such/page/")
    client.raise_request_exception = False
    assert client.get("/test/crash/").status_code == 500
    recorder.flush()
    after = window(1)

    def count(route: str) -> int:
        return after[route].requests - (before[route].requests if route in before else 0)

    assert count("GET /restaurants/<slug:slug>/") == 1
    assert count("GET <unmatched>") == 1
    crash = after["GET /test/crash/"]
    assert crash.exceptions.get("KeyError", 0) >= 1 and crash.error_rate > 0
    assert after[ALL_ROUTES].requests >= 3


@pytest.mark.urls("tests.monitoring.urls")
def test_a_view_raising_404_or_403_is_a_client_error_not_an_error(client):
    recorder = get_recorder()
    recorder.flush()
    assert client.get("/test/not-found/").status_code == 404
    assert client.get("/test/forbidden/").status_code == 403
    recorder.flush()
    after = window(1)
    for route, exception in (("GET /test/not-found/", "Http404"), ("GET /test/forbidden/", "PermissionDenied")):
        stats = after[route]
        assert stats.error_rate == 0 and stats.client_error_rate == 1.0, (route, stats)
        assert stats.exceptions.get(exception, 0) >= 1  # still counted by type


def test_two_processes_merge_through_redis(needs_redis):
    store = RedisTrafficStore("rq-merge-test")
    a, b = TrafficRecorder(store, 60), TrafficRecorder(store, 60)
    for ms in range(1, 101):
        a.record("GET /x", float(ms), 200)
    for ms in range(101, 201):
        b.record("GET /x", float(ms), 500 if ms > 190 else 200)
    a.flush()
    b.flush()
    import time

    minute = int(time.time()) // 60
    merged = store.minutes(minute, minute)[minute]["GET /x"]
    assert merged.count == 200 and merged.errors == 10
    local = LocalTrafficStore()
    local.add({(minute, "GET /x"): merged})
    assert local.minutes(minute, minute)[minute]["GET /x"].count == 200


@pytest.mark.urls("tests.monitoring.urls")
def test_n_plus_one_is_flagged_with_its_route(client, caplog):
    with caplog.at_level(logging.WARNING, logger="opsite.requests"):
        assert client.get("/test/n-plus-one/").status_code == 200
    assert any("N+1 suspected" in r.getMessage() for r in caplog.records)
    get_aggregator().flush()
    suspects = [s for s in n_plus_one_suspects(5) if s["route"] == "GET /test/n-plus-one/"]
    assert suspects
    flagged = QueryFingerprint.objects.get(fingerprint=suspects[0]["fingerprint"])
    assert flagged.n_plus_one_route == "GET /test/n-plus-one/"


def test_query_statistics_are_kept_per_fingerprint_and_explainable(client, make_staff):
    staff = make_staff()
    client.force_login(staff.user)
    for _ in range(3):
        client.get(f"/restaurants/{staff.restaurant.slug}/")
    get_aggregator().flush()
    top = top_queries(5, limit=1000)
    board = [q for q in top if q["sql"].startswith("SELECT") and 'FROM "realtime_orderevent"' in q["sql"]]
    assert board and board[0]["count"] >= 3 and board[0]["max_ms"] >= board[0]["mean_ms"] > 0
    row = QueryFingerprint.objects.get(fingerprint=board[0]["fingerprint"])
    plan = explain(row.normalized)
    assert "realtime_orderevent" in plan or "Scan" in plan or "SEARCH" in plan, plan


def test_no_parameter_or_literal_of_any_statement_is_stored(client, make_staff, admin_user):
    """Session keys, password hashes and tokens pass through the statements of a login and a
    board: none of them may reach the query catalogue or its admin."""
    from django.db import connection

    from monitoring.requests.queries import get_aggregator

    staff = make_staff()
    client.force_login(admin_user)
    session_key = client.cookies["sessionid"].value
    client.get(f"/restaurants/{staff.restaurant.slug}/")
    client.get("/admin/")
    with connection.cursor() as cursor:  # a literal written into the statement itself
        cursor.execute("SELECT 1 FROM auth_user WHERE password = 'pbkdf2_sha256$hunter2-secret' AND id > 41")
    get_aggregator().flush()
    stored = json.dumps(list(QueryFingerprint.objects.values()), default=str)  # every column of every row
    assert "django_session" in stored and "auth_user" in stored  # the statements are there
    for secret in (session_key, admin_user.password, "hunter2-secret"):
        assert secret not in stored
    session_row = QueryFingerprint.objects.filter(normalized__contains="django_session").first()
    assert session_row is not None
    for url in ("/admin/monitoring/queryfingerprint/", f"/admin/monitoring/queryfingerprint/{session_row.pk}/change/"):
        page = client.get(url).content.decode()
        assert session_key not in page and "hunter2" not in page, url


def test_normalize_folds_literals_and_in_lists():
    a = normalize("SELECT * FROM t WHERE id IN (%s, %s, %s) AND name = 'bob' AND n > 42")
    b = normalize("SELECT *  FROM t WHERE id IN (%s, %s) AND name = 'alice' AND n > 7")
    assert a == b == "SELECT * FROM t WHERE id IN (...) AND name = ? AND n > ?"


def test_explain_refuses_anything_but_select():
    with pytest.raises(ValueError, match="only SELECT"):
        explain("DELETE FROM realtime_orderevent")


def test_explain_plans_a_normalized_statement_with_placeholders_and_in_lists(make_staff):
    make_staff()
    plan = explain(
        'SELECT "realtime_restaurant"."id" FROM "realtime_restaurant" WHERE ("realtime_restaurant"."slug" = %s '
        'AND "realtime_restaurant"."id" IN (...) AND "realtime_restaurant"."name" <> ?) LIMIT ?'
    )
    assert "realtime_restaurant" in plan or "SCAN" in plan.upper(), plan


@pytest.mark.parametrize("host", ["10.1.2.3:8000", "10.1.2.3", "[fd00::5]:8001"])
def test_probes_by_ip_pass_the_host_check_and_nothing_else_does(client, settings, host):
    settings.ALLOWED_HOSTS = ["ops.example.com"]
    assert client.get("/health/live", HTTP_HOST=host).status_code == 200
    assert client.get("/health", HTTP_HOST=host).status_code == 200
    assert client.get("/accounts/login/", HTTP_HOST=host).status_code == 400  # not a probe path
    assert client.get("/health/live", HTTP_HOST="evil.example.net").status_code == 400  # a name, not an IP


def test_savepoints_are_one_statement_shape_whatever_their_names():
    names = ['SAVEPOINT "s140411_x12"', 'SAVEPOINT "s99_x1"', "SAVEPOINT s1_x3"]
    assert {normalize(n) for n in names} == {"SAVEPOINT ?"}
    assert normalize('RELEASE SAVEPOINT "s140411_x13"') == "RELEASE SAVEPOINT ?"
    assert normalize('ROLLBACK TO SAVEPOINT "s7_x2"') == "ROLLBACK TO SAVEPOINT ?"


def test_savepoints_never_fill_the_cache_of_statement_texts():
    from monitoring.requests import queries

    before = len(queries._known)
    shapes = {queries.identify(f'SAVEPOINT "s{n}_x{n}"') for n in range(5000)}
    assert len(shapes) == 1 and len(queries._known) == before


def test_normalize_keeps_select_list_positions():
    assert normalize('SELECT "a", COUNT(*) FROM t WHERE x = 5 GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 21') == (
        'SELECT "a", COUNT(*) FROM t WHERE x = ? GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ?'
    )
