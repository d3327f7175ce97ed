from __future__ import annotations

import json
import uuid

import pytest

from monitoring.models import FrontendErrorGroup
from monitoring.requests.traffic import FRONTEND, get_recorder, window

pytestmark = pytest.mark.django_db


def post(client, url, token, body):
    return client.post(
        url, data=json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )


def test_frontend_metrics_are_aggregated_per_screen_and_action(client, make_staff):
    staff = make_staff()
    screen = f"checkout-{uuid.uuid4().hex[:8]}"  # the store is shared by the whole test run
    reports = [{"screen": screen, "action": "pay", "duration_ms": ms, "device": "ipad", "network": "wifi"}
               for ms in range(100, 200)]  # fmt: skip
    assert post(client, "/api/v1/metrics/frontend", staff.token, reports).status_code == 202
    get_recorder(FRONTEND).flush()
    stats = window(5, namespace=FRONTEND)[f"{screen}/pay"]
    assert stats.requests == 100
    assert 145 <= stats.p50_ms <= 152 and 190 <= stats.p99_ms <= 202


def test_frontend_metrics_are_validated(client, make_staff):
    staff = make_staff()
    response = post(client, "/api/v1/metrics/frontend", staff.token, [{"screen": "x", "duration_ms": -1}])
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"[0].action", "[0].duration_ms"}
    assert post(client, "/api/v1/metrics/frontend", staff.token, [{}] * 101).status_code == 400
    assert post(client, "/api/v1/metrics/frontend", "opk_nope", {"screen": "a"}).status_code == 401


def test_frontend_errors_are_grouped_by_fingerprint(client, make_staff):
    staff = make_staff()
    crash = {"error_type": "TypeError", "message": "cannot read property 'total' of undefined (order 1234)",
             "stack": "at pay (app.js:10:5)\nat click (app.js:99:1)", "screen": "checkout",
             "device": {"model": "iPad", "os": "17.2"}}  # fmt: skip
    again = {**crash, "message": "cannot read property 'total' of undefined (order 9876)"}
    other = {**crash, "error_type": "RangeError"}
    assert post(client, "/api/v1/errors/frontend", staff.token, [crash, again]).status_code == 202
    assert post(client, "/api/v1/errors/frontend", staff.token, other).status_code == 202
    groups = {g.error_type: g for g in FrontendErrorGroup.objects.all()}
    assert groups["TypeError"].count == 2 and groups["RangeError"].count == 1
    assert groups["TypeError"].sample_device == {"model": "iPad", "os": "17.2"}
    assert groups["TypeError"].restaurant == staff.restaurant


def test_frontend_errors_are_validated_and_size_limited(client, make_staff):
    staff = make_staff()
    response = post(client, "/api/v1/errors/frontend", staff.token, {"error_type": "E", "device": "phone"})
    assert response.status_code == 400 and set(response.json()["fields"]) == {"message", "device"}
    huge = {"error_type": "E", "message": "m", "stack": "x" * 300_000}
    assert post(client, "/api/v1/errors/frontend", staff.token, huge).status_code == 413
    assert not FrontendErrorGroup.objects.exists()
