"""Sending notifications: the claim's lease, the circuit breaker's edges, the error kept, and
how many one pass sends. Deliveries go to a real local HTTP server; the clock is given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection

from monitoring.alerts.delivery import deliver, notifications_send_due
from monitoring.models import Alert, AlertRule, Notification, NotificationChannel
from tests.conftest import Sink

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 5, 4, 12, 0, 0, tzinfo=UTC)


def pending(sink: Sink, count: int = 1, **channel_fields: Any) -> tuple[NotificationChannel, list[Notification]]:
    AlertRule.objects.all().delete()
    rule = AlertRule.objects.create(name="delivery", metric="cpu_percent", scope="host", threshold=90)
    alert = Alert.objects.create(rule=rule, fingerprint="f", labels={"host": "web-1"})
    channel = NotificationChannel.objects.create(name="hook", kind="webhook", target=sink.url, **channel_fields)
    notes = Notification.objects.bulk_create(
        Notification(alert=alert, channel=channel, kind="firing", alert_version=n, payload={"n": n},
                     next_attempt_at=T0 - timedelta(seconds=1), created_at=T0)
        for n in range(count)
    )  # fmt: skip
    return channel, notes


def test_a_circuit_trial_and_its_claim_are_leased_for_two_send_timeouts(sink, settings):
    settings.OPSITE_ALERT_SEND_TIMEOUT_S = 10
    settings.OPSITE_ALERT_CIRCUIT_FAILURES = 3
    channel, (note,) = pending(sink, consecutive_failures=3, open_until=T0 - timedelta(seconds=1))
    seen: list[tuple[object, object]] = []

    def look() -> None:  # from the sink's thread, while the delivery waits for the answer
        seen.append((NotificationChannel.objects.get(pk=channel.pk).open_until,
                     Notification.objects.get(pk=note.pk).next_attempt_at))  # fmt: skip
        connection.close()

    sink.during = look
    assert deliver(note, now=T0) == "sent"
    assert seen == [(T0 + timedelta(seconds=25), T0 + timedelta(seconds=25))]
    channel.refresh_from_db()
    assert channel.open_until is None and channel.consecutive_failures == 0


def test_an_open_circuit_allows_its_trial_at_the_moment_it_ends(sink, settings):
    settings.OPSITE_ALERT_CIRCUIT_FAILURES = 3
    _, (note,) = pending(sink, consecutive_failures=3, open_until=T0)
    assert deliver(note, now=T0 - timedelta(microseconds=1)) == "deferred"
    note.refresh_from_db()
    assert deliver(note, now=T0) == "sent"


def test_a_channel_below_the_failure_count_is_not_held_by_an_old_open_until(sink, settings):
    settings.OPSITE_ALERT_CIRCUIT_FAILURES = 5  # raised since the circuit opened
    _, (note,) = pending(sink, consecutive_failures=3, open_until=T0 + timedelta(hours=1))
    assert deliver(note, now=T0) == "sent"


def test_the_circuit_opens_only_at_the_configured_failure_count(sink, settings):
    settings.OPSITE_ALERT_CIRCUIT_FAILURES = 3
    settings.OPSITE_ALERT_CIRCUIT_RESET_S = 60
    sink.status = 500
    channel, (note,) = pending(sink)
    for failures in (1, 2):
        assert deliver(note, now=T0) == "retrying"
        note.refresh_from_db()
        channel.refresh_from_db()
        assert channel.consecutive_failures == failures and channel.open_until is None
    assert deliver(note, now=T0) == "retrying"
    channel.refresh_from_db()
    assert channel.open_until == T0 + timedelta(seconds=60)


def test_a_failure_keeps_at_most_2000_characters_of_its_error(sink):
    sink.status = 500
    _, (note,) = pending(sink)
    NotificationChannel.objects.update(target=f"{sink.url}?{'q' * 3000}")  # httpx names the URL in its error
    assert deliver(note, now=T0) == "retrying"
    note.refresh_from_db()
    assert len(note.last_error) == 2000 and note.last_error.startswith("HTTPStatusError: Server error '500")


def test_one_pass_sends_at_most_200_and_counts_what_became_of_each(sink):
    pending(sink, count=201)
    assert notifications_send_due(now=T0) == {"sent": 200}
    assert len(sink.received) == 200
    assert notifications_send_due(now=T0) == {"sent": 1}
