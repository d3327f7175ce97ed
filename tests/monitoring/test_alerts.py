"""Alert rules and state, notifications through real SMTP and HTTP sinks, silences, inhibition.

The clock is controlled: every evaluation and delivery is given its ``now``; metric values come
from real rows (node reports, order events) written for that moment.
"""

from __future__ import annotations

import threading
import time as time_module
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from unittest import mock

import psycopg
import pytest
from django.core.management import call_command
from psycopg import sql

from monitoring.alerts.delivery import notifications_send_due
from monitoring.alerts.evaluation import Evaluator, alerts_evaluate
from monitoring.models import Alert, AlertRule, MuteWindow, NodeReport, Notification, NotificationChannel, Silence
from tests.conftest import Sink

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 5, 4, 12, 0, 0, tzinfo=UTC)  # a Monday


@pytest.fixture(autouse=True)
def only_test_rules(db: Any) -> None:
    AlertRule.objects.all().delete()  # the defaults are tested on their own
    NodeReport.objects.all().delete()


def host_cpu(host: str, cpu: float, at: datetime) -> None:
    NodeReport.objects.update_or_create(
        node=f"{host}:1", defaults={"host": host, "role": "web", "figures": {"cpu_percent": cpu},
                                    "reported_at": at, "expires_at": at + timedelta(seconds=45)},
    )  # fmt: skip


def rule(channel: NotificationChannel | None = None, **fields: Any) -> AlertRule:
    values = {"name": "cpu hot", "metric": "cpu_percent", "scope": "host", "threshold": 90, "for_s": 60,
              "repeat_interval_s": 3600, **fields}  # fmt: skip
    created = AlertRule.objects.create(**values)
    if channel is not None:
        created.channels.add(channel)
    return created


def webhook(sink: Sink, name: str = "hook") -> NotificationChannel:
    return NotificationChannel.objects.create(name=name, kind="webhook", target=sink.url)


def evaluate_at(at: datetime, cpu: float | None = None, host: str = "web-1") -> None:
    if cpu is not None:
        host_cpu(host, cpu, at)
    alerts_evaluate(now=at)
    notifications_send_due(now=at)


def state() -> str:
    return Alert.objects.get().state


def test_it_is_pending_first_and_fires_only_after_the_for_duration(sink):
    rule(webhook(sink))
    evaluate_at(T0, cpu=95)
    assert state() == "pending" and not sink.received
    evaluate_at(T0 + timedelta(seconds=30), cpu=96)
    assert state() == "pending"
    evaluate_at(T0 + timedelta(seconds=60), cpu=97)  # exactly the for duration
    alert = Alert.objects.get()
    assert alert.state == "firing" and alert.labels == {"host": "web-1"} and alert.value == 97
    assert len(sink.received) == 1
    sent = sink.received[0]
    assert sent["status"] == "firing" and sent["rule"] == "cpu hot" and sent["labels"] == {"host": "web-1"}
    assert sent["fired_at"] == (T0 + timedelta(seconds=60)).isoformat() and sent["resolved_at"] is None
    assert Notification.objects.get().status == "sent"


def test_a_dip_below_the_threshold_while_pending_starts_over(sink):
    rule(webhook(sink))
    evaluate_at(T0, cpu=95)
    evaluate_at(T0 + timedelta(seconds=40), cpu=50)
    assert state() == "inactive"
    evaluate_at(T0 + timedelta(seconds=70), cpu=95)
    assert state() == "pending" and not sink.received


def test_the_recovery_threshold_stops_flapping_and_the_resolved_notice_is_sent(sink):
    rule(webhook(sink), for_s=0, recovery_threshold=80)
    evaluate_at(T0, cpu=91)
    assert state() == "firing"
    for n, cpu in enumerate([89, 90.5, 85, 91, 81], start=1):  # around the threshold, above recovery
        evaluate_at(T0 + timedelta(seconds=15 * n), cpu=cpu)
        assert state() == "firing"
    evaluate_at(T0 + timedelta(seconds=120), cpu=79)
    assert state() == "resolved" and not Alert.objects.get().held  # as written by the transition itself
    assert [m["status"] for m in sink.received] == ["firing", "resolved"]
    assert sink.received[1]["resolved_at"]
    evaluate_at(T0 + timedelta(seconds=135), cpu=50)  # calm: it stays resolved, nothing more is sent
    assert state() == "resolved" and Alert.objects.get().resolved_at is not None and not Alert.objects.get().held
    assert len(sink.received) == 2


def test_no_data_is_its_own_state_and_sends_nothing(sink):
    rule(webhook(sink), scope="overall", for_s=0)
    evaluate_at(T0)  # no node has reported
    assert state() == "nodata"
    evaluate_at(T0 + timedelta(seconds=15), cpu=95)
    assert state() == "firing"
    NodeReport.objects.all().delete()
    evaluate_at(T0 + timedelta(seconds=30))
    assert state() == "nodata"
    assert [m["status"] for m in sink.received] == ["firing"]


def test_the_repeat_interval_is_honoured_and_acknowledging_stops_repeats(sink):
    rule(webhook(sink), for_s=0, repeat_interval_s=600)
    evaluate_at(T0, cpu=95)
    evaluate_at(T0 + timedelta(seconds=599), cpu=95)
    assert len(sink.received) == 1
    evaluate_at(T0 + timedelta(seconds=600), cpu=95)
    assert [m["kind"] for m in sink.received] == ["firing", "repeat"]
    Alert.objects.update(acknowledged_at=T0, acknowledged_by="ana")
    evaluate_at(T0 + timedelta(seconds=1300), cpu=95)
    assert len(sink.received) == 2


def test_a_silence_suppresses_until_it_ends(sink):
    rule(webhook(sink), for_s=0, repeat_interval_s=300)
    Silence.objects.create(matchers={"rule": "cpu hot", "host": "web-1"}, starts_at=T0 - timedelta(minutes=1),
                           ends_at=T0 + timedelta(minutes=10), reason="maintenance", created_by="ana")  # fmt: skip
    evaluate_at(T0, cpu=95)
    assert state() == "firing" and not sink.received
    suppressed = Notification.objects.get()
    assert suppressed.status == "suppressed" and "maintenance" in suppressed.reason
    evaluate_at(T0 + timedelta(minutes=11), cpu=95)  # the repeat after the silence ended goes out
    assert [m["kind"] for m in sink.received] == ["repeat"]


def test_a_silence_for_another_host_does_not_apply(sink):
    rule(webhook(sink), for_s=0)
    Silence.objects.create(matchers={"host": "web-2"}, starts_at=T0 - timedelta(minutes=1),
                           ends_at=T0 + timedelta(hours=1), reason="other", created_by="ana")  # fmt: skip
    evaluate_at(T0, cpu=95)
    assert len(sink.received) == 1


def test_a_mute_window_suppresses_inside_it_and_not_outside(sink):
    rule(webhook(sink), for_s=0, recovery_threshold=80)
    # Monday 13:30-15:00 in Rome is 11:30-13:00 UTC (summer time)
    MuteWindow.objects.create(matchers={"host": "web-1"}, weekdays="0", start_time=time(13, 30),
                              end_time=time(15, 0), timezone="Europe/Rome", reason="closed")  # fmt: skip
    evaluate_at(T0, cpu=95)
    assert Notification.objects.get().status == "suppressed" and not sink.received
    evaluate_at(T0 + timedelta(minutes=10), cpu=50)
    evaluate_at(T0 + timedelta(hours=1, minutes=5), cpu=95)  # 13:05 UTC: the window has closed
    assert [m["status"] for m in sink.received] == ["firing"]


@contextmanager
def database_refusing_connections() -> Iterator[None]:
    """The test database really stops taking connections: new ones are refused by the server and
    every open one but this thread's is cut, as when Postgres is at its connection limit or going
    down. This thread keeps its own connection so the evaluator can still load its rules."""
    from django.db import connection

    name = connection.settings_dict["NAME"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        own_pid = cursor.fetchone()[0]
    base = connection.settings_dict
    admin = psycopg.connect(host=base["HOST"], port=base["PORT"], user=base["USER"], dbname="postgres",
                            autocommit=True)  # fmt: skip
    try:
        admin.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(sql.Identifier(name)))
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> %s",
                      (name, own_pid))  # fmt: skip
        yield
    finally:
        admin.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(sql.Identifier(name)))
        admin.close()


def test_rules_that_read_the_database_are_held_while_it_is_down(sink, make_restaurant, needs_postgres):
    from realtime.models import OrderEvent

    restaurant = make_restaurant()
    rule(webhook(sink), name="busy", metric="orders_per_minute", scope="overall", threshold=2, window_s=60, for_s=0)
    rule(webhook(sink, "hook-2"), for_s=0)  # CPU is read from node reports: not held
    rule(webhook(sink, "hook-3"), name="calm", metric="orders_per_minute", scope="overall", threshold=1000,
         window_s=60, for_s=0)  # fmt: skip
    alerts_evaluate(now=T0 - timedelta(seconds=15))
    assert Alert.objects.get(rule__name="busy").state == "inactive"
    for n in range(5):
        OrderEvent.objects.create(restaurant=restaurant, seq=n + 1, epoch=restaurant.epoch, type="order.created",
                                  order_id=f"o{n}", total_amount=Decimal("1"), items_count=1,
                                  occurred_at=T0 - timedelta(seconds=30))  # fmt: skip
    host_cpu("web-1", 95, T0)
    with database_refusing_connections():
        evaluate_at(T0)  # the database check opens a connection of its own: refused
    busy = Alert.objects.get(rule__name="busy")
    assert busy.held and busy.state == "inactive"
    assert Alert.objects.get(rule__name="cpu hot").state == "firing"
    assert not Notification.objects.filter(alert=busy).exists()
    assert [m["rule"] for m in sink.received] == ["cpu hot"]

    deadline = time_module.monotonic() + 30  # the connection pool reconnects with a backoff of its own
    at = T0
    while busy.held and time_module.monotonic() < deadline:
        at += timedelta(seconds=15)
        evaluate_at(at)  # the database is back
        busy.refresh_from_db()
    assert busy.state == "firing" and not busy.held
    assert sorted(m["rule"] for m in sink.received) == ["busy", "cpu hot"], "the held notification was not released"
    calm = Alert.objects.get(rule__name="calm")  # held too, and back to a quiet state: its flag is written
    assert calm.state == "inactive" and not calm.held


def test_rules_on_one_windowed_metric_each_read_their_own_window(sink, make_restaurant):
    from realtime.models import OrderEvent

    restaurant = make_restaurant()
    OrderEvent.objects.bulk_create(
        OrderEvent(restaurant=restaurant, seq=n + 1, epoch=restaurant.epoch, type="order.created", order_id=f"w{n}",
                   total_amount=Decimal("1"), items_count=1, occurred_at=T0 - timedelta(minutes=30))
        for n in range(120)
    )  # fmt: skip
    rule(webhook(sink), name="last minute", metric="orders_per_minute", scope="overall", threshold=1, window_s=60,
         for_s=0)  # fmt: skip
    rule(webhook(sink, "hook-2"), name="last hour", metric="orders_per_minute", scope="overall", threshold=1,
         window_s=3600, for_s=0)  # fmt: skip
    evaluate_at(T0)
    assert Alert.objects.get(rule__name="last minute").state == "inactive"
    hour = Alert.objects.get(rule__name="last hour")
    assert hour.state == "firing" and hour.value == 2  # 120 orders over 60 minutes
    assert [m["rule"] for m in sink.received] == ["last hour"]


def test_a_failing_channel_is_retried_then_its_circuit_opens_then_it_recovers(sink, settings):
    settings.OPSITE_ALERT_CIRCUIT_FAILURES = 2
    settings.OPSITE_ALERT_CIRCUIT_RESET_S = 60
    settings.OPSITE_ALERT_RETRY_BASE_S = 10
    channel = webhook(sink)
    rule(channel, for_s=0)
    sink.status = 500
    evaluate_at(T0, cpu=95)
    note = Notification.objects.get()
    assert note.status == "pending" and note.attempts == 1 and "500" in note.last_error
    assert T0 + timedelta(seconds=5) <= note.next_attempt_at <= T0 + timedelta(seconds=15)  # 10 s ± 50 %
    second_try = note.next_attempt_at
    notifications_send_due(now=second_try)
    note.refresh_from_db()
    channel.refresh_from_db()
    assert note.attempts == 2 and channel.consecutive_failures == 2
    assert channel.open_until == second_try + timedelta(seconds=60)  # the second failure in a row opened it
    opened_until = channel.open_until
    tries = len(sink.received)
    notifications_send_due(now=opened_until - timedelta(seconds=1))  # open: nothing is tried
    note.refresh_from_db()
    assert len(sink.received) == tries and note.attempts == 2 and note.next_attempt_at >= opened_until
    sink.status = 200
    notifications_send_due(now=opened_until + timedelta(seconds=1))  # the trial delivery
    note.refresh_from_db()
    channel.refresh_from_db()
    assert note.status == "sent" and note.attempts == 3 and len(sink.received) == tries + 1
    assert channel.consecutive_failures == 0 and channel.open_until is None


def test_a_channel_that_never_answers_is_given_up_after_the_attempts(sink, settings):
    settings.OPSITE_ALERT_MAX_ATTEMPTS = 3
    settings.OPSITE_ALERT_CIRCUIT_FAILURES = 100
    rule(webhook(sink), for_s=0)
    sink.status = 503
    evaluate_at(T0, cpu=95)
    at = T0
    for _ in range(5):
        at += timedelta(hours=2)
        notifications_send_due(now=at)
    note = Notification.objects.get()
    assert note.status == "failed" and note.attempts == 3 and len(sink.received) == 3


def test_two_evaluators_at_once_notify_once(sink):
    rule(webhook(sink), for_s=0)
    host_cpu("web-1", 95, T0)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def evaluate() -> None:
        from django.db import connection

        try:
            evaluator = Evaluator(T0)
            barrier.wait()
            evaluator.run()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=evaluate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert Alert.objects.count() == 1 and state() == "firing"
    assert Notification.objects.count() == 1
    notifications_send_due(now=T0)
    notifications_send_due(now=T0)
    assert len(sink.received) == 1


def test_email_goes_through_a_real_smtp_server(settings):
    from aiosmtpd.controller import Controller

    received: list[Any] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append(envelope)
            return "250 OK"

    from tests.conftest import free_port

    controller = Controller(Handler(), hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        channel = NotificationChannel.objects.create(
            name="ops mail", kind="email", target="a@example.com, b@example.com"
        )
        rule(channel, for_s=0)
        evaluate_at(T0, cpu=97)
    finally:
        controller.stop()
    assert len(received) == 1
    assert sorted(received[0].rcpt_tos) == ["a@example.com", "b@example.com"]
    text = received[0].content.decode()
    assert "cpu hot" in text and "host=web-1" in text and "[WARNING]" in text
    assert Notification.objects.get().status == "sent"


def test_slack_gets_a_text_message(sink):
    channel = NotificationChannel.objects.create(name="slack", kind="slack", target=sink.url)
    rule(channel, for_s=0, severity="critical")
    evaluate_at(T0, cpu=99)
    assert sink.received == [{"text": sink.received[0]["text"]}]
    assert sink.received[0]["text"].startswith("[CRITICAL] cpu hot [host=web-1]: CPU use is 99 %")


def test_a_fresh_install_has_the_usual_rules():
    from monitoring.alerts.defaults import ensure_default_rules

    assert ensure_default_rules() == 22
    names = set(AlertRule.objects.values_list("name", flat=True))
    assert {"Error rate above 5 %", "p95 latency above 1 s", "CPU above 90 %", "Memory above 90 %", "Disk above 90 %",
            "Beat heartbeat older than 45 seconds", "No verified backup in 26 hours"} <= names  # fmt: skip
    assert AlertRule.objects.get(name="No verified backup in 26 hours").threshold == 26 * 3600
    assert ensure_default_rules() == 0  # rules exist: nothing is added or changed


def test_evaluate_alerts_command_reports_what_it_did(capsys):
    from monitoring.alerts.defaults import ensure_default_rules

    ensure_default_rules()
    call_command("evaluate_alerts")
    out = capsys.readouterr().out
    assert out.startswith("22 rule(s)")
    # beat has never written a heartbeat and no backup was ever verified: both fire at once
    firing = set(Alert.objects.filter(state="firing").values_list("rule__name", flat=True))
    assert {"Beat heartbeat older than 45 seconds", "No verified backup in 26 hours"} <= firing


async def test_the_ops_socket_pushes_fired_alerts(sink, needs_redis):
    from channels.db import database_sync_to_async

    from tests.conftest import session_cookie_for
    from tests.monitoring.test_dashboard import frame_of, make_user, open_ops

    user = await database_sync_to_async(make_user)("alert-watcher", dashboard=True)
    cookie = await database_sync_to_async(session_cookie_for)(user)
    socket = await open_ops(cookie)
    await frame_of(socket, "hello")
    await database_sync_to_async(rule)(for_s=0)
    await database_sync_to_async(evaluate_at)(datetime.now(UTC), 99.0)
    fired = await frame_of(socket, "alert.fired")
    assert fired["rule"] == "cpu hot" and fired["labels"] == {"host": "web-1"} and fired["value"] == 99.0
    await socket.disconnect()


def test_the_alert_list_acknowledges_and_silences(admin_client, sink):
    rule(webhook(sink), for_s=0)
    evaluate_at(T0, cpu=95)
    alert = Alert.objects.get()
    changelist = "/admin/monitoring/alert/"
    assert admin_client.get(changelist).status_code == 200
    admin_client.post(changelist, {"action": "acknowledge", "_selected_action": [alert.pk]})
    alert.refresh_from_db()
    assert alert.acknowledged_by == "admin" and alert.acknowledged_at is not None
    admin_client.post(changelist, {"action": "silence_2h", "_selected_action": [alert.pk]})
    silence = Silence.objects.get()
    assert silence.matchers == {"rule": "cpu hot", "host": "web-1"} and silence.created_by == "admin"
    assert timedelta(hours=1, minutes=59) < silence.ends_at - silence.starts_at <= timedelta(hours=2)
    for page in ("alertrule/add/", "notification/", "taskrun/", "silence/", "mutewindow/", "notificationchannel/"):
        assert admin_client.get(f"/admin/monitoring/{page}").status_code == 200, page


def test_metrics_show_alert_states_and_cache_hit_ratios(client, settings):
    from monitoring.dashboard.selectors import orders_today

    settings.OPS_API_TOKENS = ["t0ken"]
    rule(for_s=0)
    evaluate_at(T0, cpu=95)
    orders_today()
    orders_today()  # a hit at least
    text = client.get("/metrics", HTTP_AUTHORIZATION="Bearer t0ken").content.decode()
    assert 'opsite_alerts{severity="warning",state="firing"} 1.0' in text
    ratio = next(
        line for line in text.splitlines() if line.startswith('opsite_cache_hit_ratio{namespace="orders-today"}')
    )
    assert 0 < float(ratio.split()[-1]) <= 1


def test_a_rule_for_a_scope_its_metric_lacks_is_refused(admin_client):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as refused:
        AlertRule(name="x", metric="cpu_percent", scope="restaurant", threshold=1).full_clean()
    assert "scope" in refused.value.message_dict
    form = {"name": "bad", "metric": "queue_depth", "scope": "host", "comparison": "gt", "threshold": "5",
            "window_s": "60", "for_s": "0", "severity": "warning", "repeat_interval_s": "3600", "enabled": "on"}  # fmt: skip
    response = admin_client.post("/admin/monitoring/alertrule/add/", form)
    assert response.status_code == 200 and "queue_depth can be watched overall" in response.content.decode()
    assert not AlertRule.objects.filter(name="bad").exists()


def test_retries_back_off_doubling_with_jitter_up_to_an_hour(settings):
    from monitoring.alerts.delivery import backoff_s

    settings.OPSITE_ALERT_RETRY_BASE_S = 10
    for attempt, base in ((1, 10), (2, 20), (4, 80)):
        waits = [backoff_s(attempt) for _ in range(400)]
        assert all(base * 0.5 <= w <= base * 1.5 for w in waits), (attempt, min(waits), max(waits))
        assert min(waits) < base * 0.7 and max(waits) > base * 1.3, "the jitter spreads both ways"
    assert backoff_s(30) == 3600.0  # capped at an hour


def test_each_comparison_at_its_threshold():
    from monitoring.alerts.evaluation import breached

    # (below the threshold, at it, above it) for each comparison
    expected = {"gt": (False, False, True), "gte": (False, True, True), "lt": (True, False, False),
                "lte": (True, True, False)}  # fmt: skip
    for comparison, outcomes in expected.items():
        rule_ = AlertRule(name="x", metric="cpu_percent", threshold=90, comparison=comparison)
        assert tuple(breached(rule_, v) for v in (89.5, 90, 90.5)) == outcomes, comparison


def test_an_alert_keeps_its_identity_across_versions():
    from monitoring.alerts.evaluation import fingerprint

    # stored with every alert: a new release must find the alerts the previous one made
    assert fingerprint((("host", "web-1"),)) == "9b9eaccfd8d0edbb"


def test_rules_for_a_metric_or_scope_that_no_longer_exists_are_skipped(sink):
    rule(webhook(sink), name="z cpu hot", for_s=0)  # made first and named last: read after the broken ones
    AlertRule.objects.create(name="a retired metric", metric="retired_metric", scope="overall", threshold=1, for_s=0)
    AlertRule.objects.create(name="b no such scope", metric="cpu_percent", scope="restaurant", threshold=1, for_s=0)
    host_cpu("web-1", 95, T0)
    result = alerts_evaluate(now=T0)
    assert result.rules == 1 and list(Alert.objects.values_list("rule__name", flat=True)) == ["z cpu hot"]


def test_the_result_counts_what_fired_once_not_its_repeats(sink):
    rule(webhook(sink), for_s=0, repeat_interval_s=60)
    host_cpu("web-1", 95, T0)
    first = alerts_evaluate(now=T0)
    assert first.fired == [Alert.objects.get().pk] and first.notifications == 1 and first.held == 0
    assert 0 < first.seconds < 30 and first.alerts == 1  # how long the evaluation took, and what it touched
    host_cpu("web-1", 95, T0 + timedelta(seconds=90))
    repeat = alerts_evaluate(now=T0 + timedelta(seconds=90))
    assert repeat.fired == [] and repeat.notifications == 1  # a reminder, not a new firing
    assert first.resolved == [] and repeat.resolved == []
    host_cpu("web-1", 10, T0 + timedelta(seconds=105))
    calm = alerts_evaluate(now=T0 + timedelta(seconds=105))
    assert calm.resolved == [Alert.objects.get().pk] and calm.fired == []


def test_a_metric_that_cannot_be_read_is_no_data_and_the_other_rules_go_on(sink):
    from monitoring.alerts.metrics import METRICS, Metric

    def unreadable(reading: Any) -> dict:
        raise RuntimeError("the source is gone")

    broken = Metric("broken_metric", "broken", "", ("overall",), read=unreadable)
    with mock.patch.dict(METRICS, {"broken_metric": broken}):
        rule(webhook(sink, "hook-2"), name="broken", metric="broken_metric", scope="overall", for_s=0)
        rule(webhook(sink), for_s=0)
        evaluate_at(T0, cpu=95)
    assert Alert.objects.get(rule__name="cpu hot").state == "firing"
    assert not Alert.objects.filter(rule__name="broken").exclude(state="nodata").exists()


def test_a_firing_alert_shows_its_newest_value(sink):
    rule(webhook(sink), for_s=0)
    evaluate_at(T0, cpu=95)
    evaluate_at(T0 + timedelta(seconds=15), cpu=97.5)
    alert = Alert.objects.get()
    assert alert.state == "firing" and alert.value == 97.5 and alert.last_evaluated_at == T0 + timedelta(seconds=15)


def test_a_host_that_stops_reporting_turns_its_alert_to_no_data(sink):
    rule(webhook(sink), for_s=0)
    evaluate_at(T0, cpu=95)
    evaluate_at(T0, cpu=20, host="web-2")
    assert dict(Alert.objects.values_list("labels__host", "state")) == {"web-1": "firing", "web-2": "inactive"}
    NodeReport.objects.filter(host="web-1").delete()  # web-1 is gone; web-2 still reports
    evaluate_at(T0 + timedelta(seconds=15), cpu=20, host="web-2")
    assert dict(Alert.objects.values_list("labels__host", "state")) == {"web-1": "nodata", "web-2": "inactive"}
