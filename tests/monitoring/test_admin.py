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


def test_admin_pages_show_values_in_human_units_and_manifests_as_tables(admin_client):
    from django.utils import timezone

    from backups.models import Backup
    from common.formats import duration, measurement
    from monitoring.alerts.defaults import ensure_default_rules
    from monitoring.history.models import CLUSTER, MetricSnapshot, Resolution

    assert [duration(s) for s in (93600.0, 45, 150, 0.35, 3 * 86400, None)] == [
        "26 h", "45 s", "2 min 30 s", "0.35 s", "3 d", "-"]  # fmt: skip
    assert (measurement(15.012905, "%"), measurement(1234.5, "ms"), measurement(0.0123, "%")) == (
        "15.0 %", "1,234 ms", "0.0123 %")  # fmt: skip
    ensure_default_rules()
    rules = admin_client.get("/admin/monitoring/alertrule/").content.decode()
    assert "&gt; 26 h" in rules and "93600" not in rules  # the backup-age rule
    assert "&gt; 5 %" in rules  # the error-rate rule
    backup = Backup.objects.create(status=Backup.Status.VERIFIED, engine="postgresql", format="pg_dump custom",
                                   size_bytes=32120, row_counts={"realtime_orderevent": 4},
                                   migrations={"realtime": "0005_restaurant_currency"})  # fmt: skip
    page = admin_client.get(f"/admin/backups/backup/{backup.pk}/change/").content.decode()
    assert "<th scope='row'>realtime_orderevent</th><td>4</td>" in page
    assert "0005_restaurant_currency</td>" in page and '{"realtime_orderevent"' not in page
    assert "31.4 KiB" in admin_client.get("/admin/backups/backup/").content.decode()
    MetricSnapshot.objects.create(resolution=Resolution.MINUTE, host=CLUSTER, taken_at=timezone.now(),
                                  request_rate=4.5, error_rate=0.015012905, p95_ms=123.456)  # fmt: skip
    snapshots = admin_client.get("/admin/monitoring/metricsnapshot/").content.decode()
    assert "all hosts (*)" in snapshots and "1.5 %" in snapshots and "123 ms" in snapshots
