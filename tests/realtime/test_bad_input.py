"""Bad input never reaches the database as a 500: every case below answers 400 with what is
wrong, writes nothing, and leaves the restaurant's history readable by every reader (the
catch-up endpoint, the admin, a socket resuming)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async

from monitoring.models import FrontendErrorGroup
from realtime.models import OrderEvent

from .conftest import event, next_frame, open_feed

pytestmark = pytest.mark.django_db(transaction=True)

INGEST = "/api/v1/orders/events"


def post(client: Any, url: str, token: str, body: str | bytes) -> Any:
    return client.post(url, data=body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")


def valid(order_id: str = "OK-1", **extra: Any) -> dict[str, Any]:
    return event(order_id, **extra)


def _iso(moment: datetime) -> str:
    return moment.isoformat()


NOW = datetime.now(UTC)
BAD_BODIES: dict[str, str] = {
    "nested 2,000 deep": json.dumps(valid() | {"data": {}})[:-2] + ', "x": ' + "[" * 2000 + "]" * 2000 + "}}",
    "nested 40 deep in data": json.dumps(valid(data={"a": json.loads("[" * 40 + "]" * 40)})),
    "NaN in data": json.dumps(valid())[:-1] + ', "data": {"v": NaN}}',
    "Infinity as the amount": json.dumps(valid()).replace('"total_amount": "10.00"', '"total_amount": Infinity'),
    "1e999 in data": json.dumps(valid())[:-1] + ', "data": {"v": 1e999}}',
    "NUL in order_id": json.dumps(valid("A\u0000B")),
    "NUL in a data key": json.dumps(valid(data={"k\u0000": 1})),
    "lone surrogate in table": json.dumps(valid()).replace('"items_count"', '"table": "\\ud800", "items_count"'),
    "type as an object": json.dumps(valid() | {"type": {"a": 1}}),
    "type as a list": json.dumps(valid() | {"type": ["order.created"]}),
    "30 February": json.dumps(valid(occurred_at="2024-02-30T10:00:00Z")),
    "hour 25": json.dumps(valid(occurred_at="2024-01-01T25:00:00Z")),
    "offset +25:00": json.dumps(valid(occurred_at="2024-01-01T10:00:00+25:00")),
    "year 10000 in UTC": json.dumps(valid(occurred_at="9999-12-31T23:59:59-14:00")),
    "year 0 in UTC": json.dumps(valid(occurred_at="0001-01-01T00:00:00+14:00")),
    "two days ahead": json.dumps(valid(occurred_at=_iso(NOW + timedelta(days=2)))),
    "a year ago": json.dumps(valid(occurred_at=_iso(NOW - timedelta(days=365)))),
    "a batch with one bad event": json.dumps([valid("B-1"), valid("B-2", occurred_at="2024-02-30T00:00:00Z")]),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_bad_ingest_bodies_answer_400_with_what_is_wrong_and_write_nothing(case, client, make_staff):
    staff = make_staff()
    response = post(client, INGEST, staff.token, BAD_BODIES[case])
    assert response.status_code == 400, (case, response.status_code, response.content[:300])
    body = response.json()
    assert body["error"] in {"invalid", "bad_json"} and body["message"]
    if body["error"] == "invalid":
        assert body["fields"], body
    assert not OrderEvent.objects.exists()


def test_the_date_bounds_are_named_in_the_error(client, make_staff, settings):
    settings.OPSITE_EVENT_MAX_FUTURE_S = 600
    staff = make_staff()
    ahead = post(client, INGEST, staff.token, json.dumps(valid(occurred_at=_iso(NOW + timedelta(hours=1)))))
    assert "OPSITE_EVENT_MAX_FUTURE_S" in ahead.json()["fields"]["occurred_at"]
    close = post(client, INGEST, staff.token, json.dumps(valid(occurred_at=_iso(NOW + timedelta(minutes=5)))))
    assert close.status_code == 201


FRONTEND_BAD: dict[str, tuple[str, str]] = {
    "NaN duration": ("/api/v1/metrics/frontend", '{"screen": "s", "action": "a", "duration_ms": NaN}'),
    "NUL in a screen": ("/api/v1/metrics/frontend", json.dumps({"screen": "s\u0000", "action": "a", "duration_ms": 1})),
    "NUL in an error message": (
        "/api/v1/errors/frontend",
        json.dumps({"error_type": "E", "message": "m\u0000"}),
    ),
    "[valid, bad] errors": (
        "/api/v1/errors/frontend",
        json.dumps(
            [
                {"error_type": "TypeError", "message": "fine"},
                {"error_type": "TypeError", "message": "x", "device": [1]},
            ]
        ),
    ),
    "nested device": (
        "/api/v1/errors/frontend",
        json.dumps({"error_type": "E", "message": "m", "device": json.loads("[" * 50 + "]" * 50)}),
    ),
}


@pytest.mark.parametrize("case", list(FRONTEND_BAD))
def test_bad_frontend_reports_answer_400_and_store_nothing(case, client, make_staff):
    staff = make_staff()
    url, body = FRONTEND_BAD[case]
    response = post(client, url, staff.token, body)
    assert response.status_code == 400, (case, response.content[:300])
    assert response.json()["fields"]
    assert not FrontendErrorGroup.objects.exists()


@pytest.mark.parametrize("query", ["after_seq=²", "limit=²", "after_seq=" + "9" * 4400, "after_seq=99999999999999999999",
                                   "after_seq=-1", "limit=1.5"])  # fmt: skip
def test_catch_up_parameters_that_are_not_counts_answer_400(query, client, make_staff):
    staff = make_staff()
    client.force_login(staff.user)
    response = client.get(f"/api/v1/restaurants/{staff.restaurant.slug}/orders/events?{query}")
    assert response.status_code == 400 and "integer" in response.json()["message"]


async def test_after_bad_input_every_reader_still_answers(make_staff, settings):
    """The history once held a year-10000 event that broke the catch-up, the admin and the
    socket's resume; now such input is refused, and all three read what was stored."""
    from django.test import AsyncClient

    staff = await database_sync_to_async(make_staff)()
    client = AsyncClient()
    answers = []
    for body in [*BAD_BODIES.values(), json.dumps([valid("R-1"), valid("R-2")])]:
        response = await client.post(INGEST, data=body, content_type="application/json",
                                     headers={"Authorization": f"Bearer {staff.token}"})  # fmt: skip
        answers.append(response.status_code)
    assert answers == [400] * len(BAD_BODIES) + [201], answers
    await database_sync_to_async(client.force_login)(staff.user)
    caught = await client.get(f"/api/v1/restaurants/{staff.restaurant.slug}/orders/events?after_seq=0")
    assert caught.status_code == 200 and [e["order_id"] for e in caught.json()["events"]] == ["R-1", "R-2"]
    admin = await database_sync_to_async(_superuser_client)()
    assert (await database_sync_to_async(admin.get)("/admin/realtime/orderevent/")).status_code == 200
    feed = await open_feed(staff.cookie, staff.restaurant.slug, "?last_seq=0")
    assert (await next_frame(feed))["type"] == "hello"
    assert [(await next_frame(feed))["order_id"] for _ in range(2)] == ["R-1", "R-2"]
    await feed.disconnect()


def _superuser_client() -> Any:
    from django.contrib.auth import get_user_model
    from django.test import Client

    client = Client()
    client.force_login(get_user_model().objects.create_superuser("bad-input-admin", password="pw-123456"))
    return client


@pytest.mark.processes
@pytest.mark.parametrize("kind", ["gunicorn", "uvicorn"])
def test_a_chunked_body_is_read_by_both_servers(kind, make_staff, start_server, tmp_path, needs_redis):
    import subprocess
    import sys

    import httpx

    from tests.conftest import ROOT, free_port, server_env, wait_ready

    staff = make_staff()
    if kind == "uvicorn":
        url, process = start_server().url, None
    else:
        port = free_port()
        log = tmp_path / "gunicorn.log"
        process = subprocess.Popen([sys.executable, "-m", "gunicorn", "opsite.wsgi:application", "-b",
                                    f"127.0.0.1:{port}", "-w", "1"], cwd=ROOT, env=server_env(),
                                   stdout=log.open("wb"), stderr=subprocess.STDOUT)  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, process, log)
    try:
        body = json.dumps(valid("CHUNKED-1")).encode()
        response = httpx.post(f"{url}{INGEST}", content=iter([body[:20], body[20:]]),  # no length: chunked
                              headers={"Authorization": f"Bearer {staff.token}", "Content-Type": "application/json"},
                              timeout=10)  # fmt: skip
        assert response.status_code == 201, response.text
        assert OrderEvent.objects.filter(order_id="CHUNKED-1").exists()
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=20)


@pytest.mark.parametrize(
    "body",
    [
        json.dumps(valid()).replace('"OK-1"', '"OK-\\u0000"').encode(),  # an escaped NUL
        json.dumps(valid()).encode().replace(b"OK-1", b"OK-\xed\xa0\x80"),  # a surrogate as raw bytes
        json.dumps(valid()).replace('"OK-1"', '"OK-\\ud800"').encode("utf-16"),  # UTF-16, unescaped
    ],
    ids=["escaped NUL", "raw surrogate bytes", "utf-16"],
)
def test_strings_are_checked_whenever_the_raw_body_could_hide_a_bad_one(body, client, make_staff):
    staff = make_staff()
    response = post(client, INGEST, staff.token, body)
    assert response.status_code == 400 and "order_id" in response.json().get("fields", {}), response.content[:200]
    assert not OrderEvent.objects.exists()
