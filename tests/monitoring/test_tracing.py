"""W3C trace context: kept, made or replaced; on the response, every log line, every SQL
statement as the database receives it, the stored event, its feed frame and Celery messages."""

from __future__ import annotations

import logging
import re

import pytest
from channels.db import database_sync_to_async

from common.context import RequestState, current_request, stamp_task_message
from common.tracing import TraceContext, parse
from realtime.models import OrderEvent
from tests.realtime.conftest import event, next_frame, staff_feed

pytestmark = pytest.mark.timeout(60)

INBOUND = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


@pytest.mark.parametrize(
    ("header", "valid"),
    [
        (INBOUND, True),
        ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future", True),  # a later version may add fields
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", False),  # version 00 may not
        ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", False),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", False),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", False),
        ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", False),  # upper case is invalid
        ("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", False),
        ("garbage", False),
        ("", False),
        ("00-" + "a" * 600, False),
    ],
)
def test_traceparent_parsing_follows_the_specification(header, valid):
    assert (parse(header) is not None) is valid


def test_an_inbound_trace_is_continued_with_a_span_of_our_own(client):
    response = client.get("/health/live", HTTP_TRACEPARENT=INBOUND)
    found = TRACEPARENT.match(response["traceparent"])
    assert found is not None
    assert found.group(1) == TRACE
    assert found.group(2) != "00f067aa0ba902b7"  # our span, whose parent is the caller's
    assert found.group(3) == "01"


@pytest.mark.parametrize("header", [None, "00-zz-bad-01", "00-" + "0" * 32 + "-00f067aa0ba902b7-01", "x" * 2000])
def test_an_absent_or_malformed_trace_is_replaced_never_refused(client, header):
    extra = {"HTTP_TRACEPARENT": header} if header is not None else {}
    first = client.get("/health/live", **extra)
    second = client.get("/health/live", **extra)
    assert first.status_code == second.status_code == 200
    ids = [TRACEPARENT.match(r["traceparent"]).group(1) for r in (first, second)]  # type: ignore[union-attr]
    assert ids[0] != ids[1] and "0" * 32 not in ids


def test_every_log_line_of_the_request_carries_its_trace_id(client, settings, caplog):
    settings.OPSITE_SLOW_REQUEST_MS = 0  # so the request logs a line of its own
    with caplog.at_level(logging.WARNING, logger="opsite.requests"):
        client.get("/health/live", HTTP_TRACEPARENT=INBOUND)
    lines = [r for r in caplog.records if r.name == "opsite.requests"]
    assert lines and all(r.trace_id == TRACE for r in lines)  # type: ignore[attr-defined]
    formatter = logging.Formatter(settings.LOGGING["formatters"]["plain"]["format"])
    assert f"trace={TRACE}" in formatter.format(lines[0])


@pytest.mark.django_db
@pytest.mark.urls("tests.monitoring.urls")
def test_the_database_receives_each_statement_with_the_requests_traceparent(client, settings):
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("current_query() is Postgres'")
    response = client.get("/test/current-query/", HTTP_TRACEPARENT=INBOUND)
    sql = response.json()["sql"]
    span = TRACEPARENT.match(response["traceparent"]).group(2)  # type: ignore[union-attr]
    assert sql.endswith(f"/*traceparent='00-{TRACE}-{span}-01'*/"), sql


def test_connections_get_no_comment_wrapper_when_turned_off(settings):
    from django.db import connections

    from common.context import comment_sql
    from monitoring.requests.queries import install_observer, observe

    settings.OPSITE_SQL_COMMENTS = False
    fresh = connections.create_connection("default")
    install_observer(fresh)
    assert fresh.execute_wrappers == [observe]
    settings.OPSITE_SQL_COMMENTS = True
    install_observer(fresh)
    assert fresh.execute_wrappers == [observe, comment_sql]  # innermost: the observer sees no comment


def test_the_ingest_requests_trace_is_stored_with_the_event_and_shown_on_the_catch_up(client, make_staff):
    staff = make_staff()
    response = client.post("/api/v1/orders/events", event("t-1"), content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {staff.token}", HTTP_TRACEPARENT=INBOUND)  # fmt: skip
    assert response.status_code == 201
    assert OrderEvent.objects.get(order_id="t-1").trace_id == TRACE
    client.force_login(staff.user)
    caught = client.get(f"/api/v1/restaurants/{staff.restaurant.slug}/orders/events").json()
    assert caught["events"][0]["trace_id"] == TRACE


@pytest.mark.django_db(transaction=True)
async def test_a_client_sending_a_traceparent_finds_its_trace_id_on_the_boards_frame(make_staff):
    from django.test import AsyncClient

    staff, feed, _ = await staff_feed(make_staff)
    try:
        response = await AsyncClient().post(
            "/api/v1/orders/events", event("t-2"), content_type="application/json",
            headers={"Authorization": f"Bearer {staff.token}", "traceparent": INBOUND},
        )  # fmt: skip
        assert response.status_code == 201
        frame = await next_frame(feed)
        assert frame["order_id"] == "t-2" and frame["trace_id"] == TRACE
    finally:
        await feed.disconnect()
    stored = await database_sync_to_async(OrderEvent.objects.get)(order_id="t-2")
    assert stored.trace_id == TRACE


def test_a_task_sent_while_handling_a_request_carries_its_traceparent():
    trace = TraceContext.from_header(INBOUND)
    token = current_request.set(RequestState("req-00000001", trace))
    try:
        headers: dict[str, str] = {}
        stamp_task_message(headers=headers)
    finally:
        current_request.reset(token)
    assert headers["traceparent"] == trace.traceparent
    outside: dict[str, str] = {}
    stamp_task_message(headers=outside)
    assert outside == {}


@pytest.mark.django_db
def test_bound_values_and_escaped_percents_survive_the_comment(django_user_model):
    """With a trace, statements are bound before the comment is added: a value holding % and a
    statement holding an escaped %% must give the same rows as without."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("current_query() is Postgres'")
    django_user_model.objects.create(username="fifty%off")
    django_user_model.objects.create(username="fifty-off")
    token = current_request.set(RequestState("req-percent-1", TraceContext.from_header(INBOUND)))
    try:
        found = list(django_user_model.objects.filter(username__contains="%off").values_list("username", flat=True))
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM auth_user WHERE username LIKE 'fifty%%' AND username <> %s", ["x"])
            (count,) = cursor.fetchone()
            cursor.execute("SELECT current_query()")
            (received,) = cursor.fetchone()
    finally:
        current_request.reset(token)
    assert found == ["fifty%off"] and count == 2
    assert received.endswith("-01'*/") and TRACE in received
