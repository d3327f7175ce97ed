"""Sending notifications from the log: retries with exponential backoff and jitter, and a
circuit breaker per channel, so one dead webhook neither blocks the others nor gets hammered.

A notification is claimed before it is sent (a compare-and-set on its attempt count), so two
workers sending at once never send it twice. A channel that failed
OPSITE_ALERT_CIRCUIT_FAILURES times in a row is left alone until its ``open_until``; then one
claimed trial delivery decides whether it closes again.
"""

from __future__ import annotations

import functools
import logging
import random
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from common.resilience import CLOSED, HALF_OPEN, BreakerPolicy, RetryPolicy, circuit_state, retried
from monitoring.alerts.channels import TRANSPORTS
from monitoring.alerts.models import Notification, NotificationChannel

log = logging.getLogger(__name__)
Status = Notification.Status
MAX_BACKOFF_S = 3600.0
ANNOUNCE_RETRY = RetryPolicy(attempts=3, backoff_s=0.5)


def backoff_s(attempt: int) -> float:
    """Seconds before attempt ``attempt + 1``: doubling from the base, with ±50 % jitter."""
    base = settings.OPSITE_ALERT_RETRY_BASE_S * 2 ** (attempt - 1)
    return min(MAX_BACKOFF_S, base * random.uniform(0.5, 1.5))


def _lease(now: datetime) -> datetime:
    """How long a claimed delivery (or circuit trial) is its sender's: past two send timeouts."""
    return now + timedelta(seconds=settings.OPSITE_ALERT_SEND_TIMEOUT_S * 2 + 5)


def channel_breaker() -> BreakerPolicy:
    return BreakerPolicy(settings.OPSITE_ALERT_CIRCUIT_FAILURES, settings.OPSITE_ALERT_CIRCUIT_RESET_S)


def channel_circuit(channel: NotificationChannel, now: datetime) -> str:
    return circuit_state(failures=channel.consecutive_failures, open_until=channel.open_until, now=now,
                         policy=channel_breaker())  # fmt: skip


def _circuit_allows(channel: NotificationChannel, now: datetime) -> bool:
    """Closed, or open and past its time with this caller winning the single trial."""
    state = channel_circuit(channel, now)
    if state != HALF_OPEN:
        return state == CLOSED
    trial = NotificationChannel.objects.filter(pk=channel.pk, open_until=channel.open_until)
    return bool(trial.update(open_until=_lease(now)))


def deliver(notification: Notification, *, now: datetime) -> str:
    """Try to send one pending notification; return what became of it."""
    channel = NotificationChannel.objects.get(pk=notification.channel_id)
    if not _circuit_allows(channel, now):
        Notification.objects.filter(pk=notification.pk, status=Status.PENDING).update(
            next_attempt_at=channel.open_until, reason="waiting: the channel's circuit is open"
        )
        return "deferred"
    attempt = notification.attempts + 1
    claimed = Notification.objects.filter(pk=notification.pk, status=Status.PENDING, attempts=notification.attempts)
    if not claimed.update(attempts=attempt, next_attempt_at=_lease(now)):
        return "taken"  # another sender has it
    try:
        TRANSPORTS[channel.kind].send(channel, notification.payload)
    except Exception as exc:
        _channel_failed(channel, now)
        gave_up = attempt >= settings.OPSITE_ALERT_MAX_ATTEMPTS
        Notification.objects.filter(pk=notification.pk).update(
            status=Status.FAILED if gave_up else Status.PENDING, last_error=f"{type(exc).__name__}: {exc}"[:2000],
            next_attempt_at=now + timedelta(seconds=backoff_s(attempt)),
        )  # fmt: skip
        log.warning("notification %s via %s failed (attempt %d): %s", notification.pk, channel.name, attempt, exc)
        return "failed" if gave_up else "retrying"
    channel_circuit_reset(channel)
    Notification.objects.filter(pk=notification.pk).update(status=Status.SENT, sent_at=timezone.now(), last_error="")
    return "sent"


def _channel_failed(channel: NotificationChannel, now: datetime) -> None:
    """One more failure in a row on the channel's breaker; the one that reaches the count opens it."""
    opened = channel.consecutive_failures + 1 >= settings.OPSITE_ALERT_CIRCUIT_FAILURES
    NotificationChannel.objects.filter(pk=channel.pk).update(
        consecutive_failures=F("consecutive_failures") + 1,
        open_until=now + timedelta(seconds=settings.OPSITE_ALERT_CIRCUIT_RESET_S) if opened else channel.open_until,
    )


def notifications_send_due(*, now: datetime | None = None, limit: int = 200) -> dict[str, int]:
    """Send every pending notification whose time has come, oldest first."""
    now = now or timezone.now()
    outcomes: dict[str, int] = {}
    due = Notification.objects.filter(status=Status.PENDING, next_attempt_at__lte=now).order_by("next_attempt_at")
    for notification in list(due[:limit]):
        outcome = deliver(notification, now=now)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


def channels_announce(payload: dict[str, Any]) -> dict[str, str]:
    """Send one message that belongs to no alert (a status change seen by the monitor) to every
    enabled channel now; what became of it on each: sent, failed with the error, or skipped
    while the channel's circuit is open."""
    now = timezone.now()
    outcomes: dict[str, str] = {}
    for channel in NotificationChannel.objects.filter(enabled=True).order_by("name"):
        if not _circuit_allows(channel, now):
            outcomes[channel.name] = "skipped: the channel's circuit is open"
            continue
        try:  # no notification log behind it to retry later: a few attempts now
            retried(functools.partial(TRANSPORTS[channel.kind].send, channel, payload), ANNOUNCE_RETRY)
        except Exception as exc:
            log.warning("announcement via %s failed: %s", channel.name, exc)
            _channel_failed(channel, now)  # the same breaker as the channel's notifications
            outcomes[channel.name] = f"failed: {type(exc).__name__}: {exc}"
        else:
            if channel.consecutive_failures or channel.open_until:
                channel_circuit_reset(channel)  # closes it, and ends a trial this call made
            outcomes[channel.name] = "sent"
    return outcomes


def channel_circuits(*, now: datetime | None = None) -> list[dict[str, Any]]:
    """Each enabled channel's breaker, as the shared breakers are shown."""
    now = now or timezone.now()
    rows = []
    for channel in NotificationChannel.objects.filter(enabled=True).order_by("name"):
        state = channel_circuit(channel, now)
        until = channel.open_until.timestamp() if state != CLOSED and channel.open_until else None
        rows.append({"name": f"channel:{channel.name}", "state": state, "failures": channel.consecutive_failures,
                     "open_until": until})  # fmt: skip
    return rows


def channel_circuit_reset(channel: NotificationChannel) -> None:
    NotificationChannel.objects.filter(pk=channel.pk).update(consecutive_failures=0, open_until=None)
