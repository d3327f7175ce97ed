"""The alerts for a failing dependency (each of OPSITE_DEPENDENCIES, and the S3 backup store) and
for the overall health not healthy for longer than its rule's duration."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from backups.selectors import STORE_BREAKER
from common.resilience import circuit_reset, circuits
from monitoring.alerts.defaults import DEPENDENCY_RULE, HEALTH_DEGRADED_FOR_S, HEALTH_RULE, ensure_default_rules
from monitoring.alerts.delivery import notifications_send_due
from monitoring.alerts.evaluation import alerts_evaluate
from monitoring.alerts.metrics import METRICS, OVERALL, Reading
from monitoring.alerts.models import Alert, AlertRule, NotificationChannel
from monitoring.health.probes import STATUS_KEY, run_checks
from tests.conftest import free_port, s3_storages

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_breakers():
    for row in circuits():
        circuit_reset(row["name"])
    yield


def read(metric: str, scope: str = "overall") -> dict:
    return METRICS[metric].read(Reading(scope, 60, timezone.now()))


def test_each_dependency_is_read_up_or_down(sink, settings):
    settings.OPSITE_DEPENDENCIES = {"payments": sink.url, "loyalty": f"http://127.0.0.1:{free_port()}/"}
    assert read("dependency_down", "dependency") == {(("dependency", "payments"),): 0.0,
                                                     (("dependency", "loyalty"),): 1.0}  # fmt: skip
    assert read("dependency_down") == {OVERALL: 1.0}


def test_the_s3_backup_store_is_a_dependency_when_backups_go_there(s3_server, settings):
    settings.OPSITE_DEPENDENCIES = {}
    assert read("dependency_down") == {OVERALL: 0.0}, "a local backup directory is no dependency"
    settings.STORAGES = s3_storages(s3_server)
    assert read("dependency_down", "dependency") == {(("dependency", "backup_storage"),): 0.0}
    settings.STORAGES = s3_storages(f"http://127.0.0.1:{free_port()}")  # the store is unreachable
    circuit_reset(STORE_BREAKER)
    assert read("dependency_down", "dependency") == {(("dependency", "backup_storage"),): 1.0}
    result = run_checks(["backup_storage"], overall_timeout_s=30)["backup_storage"]
    assert result.status == "failed" and "s3://opsite-test" in result.detail


def test_the_default_dependency_rule_fires_for_the_failing_one_after_its_duration(sink, settings):
    settings.OPSITE_DEPENDENCIES = {"payments": sink.url, "loyalty": f"http://127.0.0.1:{free_port()}/"}
    ensure_default_rules()
    AlertRule.objects.exclude(name=DEPENDENCY_RULE).update(enabled=False)
    hook = NotificationChannel.objects.create(name="hook", kind="webhook", target=sink.url)
    AlertRule.objects.get(name=DEPENDENCY_RULE).channels.add(hook)
    now = timezone.now()
    alerts_evaluate(now=now)
    assert Alert.objects.get(labels={"dependency": "loyalty"}).state == "pending"
    assert Alert.objects.get(labels={"dependency": "payments"}).state == "inactive"
    alerts_evaluate(now=now + timedelta(seconds=120))
    notifications_send_due(now=now + timedelta(seconds=120))
    assert Alert.objects.get(labels={"dependency": "loyalty"}).state == "firing"
    told = [m for m in sink.received if m.get("rule") == DEPENDENCY_RULE]
    assert len(told) == 1 and told[0]["labels"] == {"dependency": "loyalty"}


@pytest.mark.parametrize(("status", "value"), [("healthy", 0.0), ("degraded", 1.0), ("unhealthy", 2.0)])
def test_the_health_status_is_read_from_the_newest_report(status, value):
    cache.set(STATUS_KEY, status, timeout=60)
    assert read("health_status") == {OVERALL: value}


def test_health_not_healthy_fires_only_after_ten_minutes_and_resolves_when_healthy():
    ensure_default_rules()
    AlertRule.objects.exclude(name=HEALTH_RULE).update(enabled=False)
    now = timezone.now()
    cache.set(STATUS_KEY, "degraded", timeout=3600)
    alerts_evaluate(now=now)
    alerts_evaluate(now=now + timedelta(seconds=HEALTH_DEGRADED_FOR_S - 60))
    assert Alert.objects.get().state == "pending"
    alerts_evaluate(now=now + timedelta(seconds=HEALTH_DEGRADED_FOR_S))
    assert Alert.objects.get().state == "firing"
    cache.set(STATUS_KEY, "healthy", timeout=3600)
    alerts_evaluate(now=now + timedelta(seconds=HEALTH_DEGRADED_FOR_S + 15))
    assert Alert.objects.get().state == "resolved"
