"""The alert evaluator's watchdog: while beat is down (or the scheduled evaluation is stuck),
the web and worker processes evaluate the rules themselves, one of them per period, so the
"beat stopped" alert fires and notifies within a minute."""

from __future__ import annotations

import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from common.scheduling import sync_periodic_tasks
from monitoring.alerts.watchdog import watchdog_pass
from monitoring.health.selectors import BEAT, EVALUATOR, WATCHDOG
from monitoring.models import Alert, AlertRule, Heartbeat, Notification, NotificationChannel
from tests.conftest import Sink

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 5, 4, 12, 0, 0, tzinfo=UTC)


def beat_rule(sink: Sink) -> AlertRule:
    from monitoring.alerts.defaults import BEAT_RULE, BEAT_RULE_THRESHOLD_S

    AlertRule.objects.all().delete()
    rule = AlertRule.objects.create(name=BEAT_RULE, metric="beat_heartbeat_age_s", threshold=BEAT_RULE_THRESHOLD_S,
                                    for_s=0, severity="critical", repeat_interval_s=3600)  # fmt: skip
    rule.channels.add(NotificationChannel.objects.create(name="hook", kind="webhook", target=sink.url))
    return rule


def test_the_watchdog_stands_in_only_while_the_evaluator_is_silent(settings, sink):
    settings.OPSITE_ALERT_WATCHDOG_S = 5
    settings.OPSITE_ALERT_EVALUATOR_MAX_AGE_S = 30
    beat_rule(sink)
    Heartbeat.objects.create(name=BEAT, at=T0 - timedelta(minutes=5))
    Heartbeat.objects.create(name=EVALUATOR, at=T0 - timedelta(seconds=10))
    assert watchdog_pass(now=T0) is False  # the scheduled evaluation is on time
    assert not Alert.objects.exists()

    Heartbeat.objects.filter(name=EVALUATOR).update(at=T0 - timedelta(seconds=31))
    assert watchdog_pass(now=T0) is True
    alert = Alert.objects.get()
    assert alert.state == "firing"
    assert [n["rule"] for n in sink.received] == ["Beat heartbeat older than 45 seconds"]
    assert Notification.objects.get().status == "sent"
    assert Heartbeat.objects.get(name=WATCHDOG).at == T0
    # within the lease period no other pass acts; after it, the next one does
    assert watchdog_pass(now=T0 + timedelta(seconds=1)) is False
    assert watchdog_pass(now=T0 + timedelta(seconds=5)) is True
    assert len(sink.received) == 1  # notified once


def test_detailed_health_says_who_evaluates_the_alerts(settings):
    from django.utils import timezone

    from monitoring.health.checks import alert_evaluation

    assert alert_evaluation().detail == "alert rules are not being evaluated"
    Heartbeat.objects.create(name=WATCHDOG, at=timezone.now())
    assert "the watchdog evaluates" in alert_evaluation().detail
    Heartbeat.objects.create(name=EVALUATOR, at=timezone.now())
    assert alert_evaluation().status == "ok"


def test_one_process_of_many_takes_the_lease(settings):
    settings.OPSITE_ALERT_WATCHDOG_S = 5
    AlertRule.objects.all().delete()
    results: list[bool] = []
    barrier = threading.Barrier(4)

    def one_pass() -> None:
        barrier.wait()
        results.append(watchdog_pass(now=T0))
        connection.close()

    threads = [threading.Thread(target=one_pass) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, False, False, True]


@pytest.mark.processes
@pytest.mark.timeout(150)
def test_beat_killed_notifies_a_real_webhook_within_a_minute(
    sink, start_server, start_celery, tmp_path, needs_redis, needs_postgres
):
    from monitoring.health.services import heartbeat_record

    sync_periodic_tasks()
    beat_rule(sink)
    for name in (BEAT, EVALUATOR):  # an installation that has been running
        heartbeat_record(name=name)
    env = {"OPSITE_ALERT_WATCHDOG_S": "5", "OPSITE_NODE_REPORT_S": "5"}
    start_celery("worker", "--pool", "solo", "-n", f"watchdog-{time.time_ns()}@%h", extra_env=env)
    beat = start_celery("beat", "-s", str(tmp_path / "beat-schedule"), extra_env=env)
    start_server(env)

    started = datetime.now(UTC)
    deadline = time.monotonic() + 60
    while not all(Heartbeat.objects.get(name=name).at > started for name in (BEAT, EVALUATOR)):
        assert time.monotonic() < deadline, "beat's heartbeat and scheduled evaluation never ran"
        time.sleep(0.5)
    assert not sink.received  # beat is alive: nothing fires

    beat.send_signal(signal.SIGKILL)
    stopped = time.monotonic()
    beat.wait(timeout=10)
    while not sink.received:
        assert time.monotonic() - stopped < 60, "no notification within 60 s of beat stopping"
        time.sleep(0.5)
    took = time.monotonic() - stopped
    assert sink.received[0]["rule"] == "Beat heartbeat older than 45 seconds" and sink.received[0]["status"] == "firing"
    assert Heartbeat.objects.filter(name=WATCHDOG).exists(), "the watchdog, not the scheduled evaluation, fired it"
    print(f"beat killed -> webhook notified in {took:.1f} s")
