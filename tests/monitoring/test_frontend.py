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


def test_the_mobile_clients_timings_body_is_accepted(client, make_staff):
    staff = make_staff()
    screen = f"menu-{uuid.uuid4().hex[:8]}"
    body = {
        "metrics": [
            {"type": "screen_load", "screen_name": screen, "duration": 240 + n, "timestamp": 1764590000000}
            for n in range(10)
        ]
        + [{"name": f"{screen}-api", "value": 80, "timestamp": 1764590000000}],
        "device_info": {"platform": "ios", "model": "iPad13,1", "os_version": "17.2", "network": "wifi"},
    }
    response = post(client, "/api/v1/metrics/frontend", staff.token, body)
    assert response.status_code == 202
    assert response.json() == {"accepted": 11, "received": 11, "status": "accepted"}
    get_recorder(FRONTEND).flush()
    stats = window(5, namespace=FRONTEND)
    assert stats[f"{screen}/screen_load"].requests == 10 and 238 <= stats[f"{screen}/screen_load"].p50_ms <= 252
    assert stats[f"{screen}-api/{screen}-api"].requests == 1
    bad = post(client, "/api/v1/metrics/frontend", staff.token, {"metrics": [{"type": "x"}], "device_info": {}})
    assert bad.status_code == 400 and set(bad.json()["fields"]) == {"[0].screen", "[0].duration_ms"}
    assert post(client, "/api/v1/metrics/frontend", staff.token, {"metrics": "all"}).status_code == 400


def test_the_mobile_clients_error_boundary_body_is_accepted(client, make_staff):
    staff = make_staff()
    boundary = {"error": "TypeError: undefined is not an object (evaluating 'order.items')",
                "componentStack": "\n    in OrderRow\n    in OrderList", "screen": "orders", "app_version": "3.2.0",
                "device_info": {"platform": "android", "model": "SM-T510"}}  # fmt: skip
    response = post(client, "/api/v1/errors/frontend", staff.token, boundary)
    assert response.status_code == 202 and response.json()["received"] == 1
    group = FrontendErrorGroup.objects.get(fingerprint=response.json()["groups"][0])
    assert group.error_type == "TypeError" and group.message.startswith("TypeError: undefined is not an object")
    assert "in OrderRow" in group.sample_stack and group.sample_device == {"platform": "android", "model": "SM-T510"}
    plain = post(client, "/api/v1/errors/frontend", staff.token, [{"message": "network request failed"}])
    assert plain.status_code == 202
    assert FrontendErrorGroup.objects.get(fingerprint=plain.json()["groups"][0]).error_type == "Error"
    empty = post(client, "/api/v1/errors/frontend", staff.token, {"error": ""})
    assert empty.status_code == 400 and "message" in empty.json()["fields"]
