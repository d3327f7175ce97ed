from __future__ import annotations

import pytest

from monitoring.models import FrontendErrorGroup, QueryFingerprint
from monitoring.requests.queries import get_aggregator
from monitoring.requests.traffic import FRONTEND, get_recorder

pytestmark = pytest.mark.django_db


def test_monitoring_admin_pages_render(admin_client, make_staff):
    staff = make_staff()
    admin_client.get(f"/restaurants/{staff.restaurant.slug}/")
    get_recorder(FRONTEND).record("checkout/pay", 120.0, 200)
    get_recorder(FRONTEND).flush()
    get_aggregator().flush()
    FrontendErrorGroup.objects.create(
        fingerprint="f" * 40, error_type="TypeError", message="x", count=1,
        first_seen="2026-01-01T00:00Z", last_seen="2026-01-01T00:00Z",
    )  # fmt: skip
    for url in ["/admin/monitoring/queryfingerprint/", "/admin/monitoring/frontenderrorgroup/",
                "/admin/monitoring/heartbeat/"]:  # fmt: skip
        assert admin_client.get(url).status_code == 200, url
    live = admin_client.get("/admin/monitoring/queryfingerprint/live/")
    assert live.status_code == 200
    assert b"checkout/pay" in live.content
    assert b"realtime_" in live.content


def test_explain_action_shows_a_plan(admin_client, make_staff):
    staff = make_staff()
    admin_client.get(f"/restaurants/{staff.restaurant.slug}/")
    get_aggregator().flush()
    row = QueryFingerprint.objects.filter(normalized__startswith="SELECT").first()
    assert row is not None
    response = admin_client.post(
        "/admin/monitoring/queryfingerprint/",
        {"action": "explain_selected", "_selected_action": [row.pk]},
        follow=True,
    )
    shown = [str(m) for m in response.context["messages"]]
    assert shown and shown[0].startswith(row.fingerprint) and len(shown[0]) > len(row.fingerprint) + 5
