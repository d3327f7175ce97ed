"""The alert evaluator's watchdog, which needs neither beat nor a worker.

Beat schedules the alert evaluation, so while beat (or every worker) is down the rule that
says "beat stopped" would never be evaluated. Every web and worker process therefore runs this
loop: every ``OPSITE_ALERT_WATCHDOG_S`` it reads the scheduled evaluator's heartbeat (written
after each scheduled evaluation), and when that is older than
``OPSITE_ALERT_EVALUATOR_MAX_AGE_S`` — beat stopped, no worker consumes, or an evaluation is
stuck — the process that takes the lease evaluates the rules and sends what is due itself.
The lease is a compare-and-set on the watchdog's own heartbeat row, so across every process
and host one of them acts per period; evaluation is race-safe besides (see
``alerts.evaluation``). The watchdog's heartbeat says when it last stood in.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from common.background import BackgroundLoop
from monitoring.alerts.delivery import notifications_send_due
from monitoring.alerts.evaluation import alerts_evaluate
from monitoring.health.models import Heartbeat
from monitoring.health.selectors import EVALUATOR, WATCHDOG, heartbeat_age_s
from monitoring.health.services import heartbeat_record

log = logging.getLogger(__name__)


def evaluator_record() -> None:
    heartbeat_record(name=EVALUATOR)


def _lease_take(now: datetime) -> bool:
    """True for the one process that may evaluate in this watchdog period."""
    held_until = now - timedelta(seconds=settings.OPSITE_ALERT_WATCHDOG_S * 0.8)
    node = settings.OPSITE_NODE_NAME
    if Heartbeat.objects.filter(name=WATCHDOG, at__lte=held_until).update(at=now, node=node):
        return True
    try:
        with transaction.atomic():
            Heartbeat.objects.create(name=WATCHDOG, at=now, node=node)
        return True
    except IntegrityError:
        return False  # another process holds the lease


def watchdog_pass(*, now: datetime | None = None) -> bool:
    """Evaluate and send when the scheduled evaluator is silent and this process takes the
    lease; True when it did."""
    now = now or timezone.now()
    age = heartbeat_age_s(EVALUATOR, now=now)
    if age is not None and age <= settings.OPSITE_ALERT_EVALUATOR_MAX_AGE_S:
        return False
    if not _lease_take(now):
        return False
    log.warning(
        "the scheduled alert evaluation has not run for %s: evaluating here",
        "ever" if age is None else f"{age:.0f} s",
    )
    alerts_evaluate()
    notifications_send_due()
    return True


def _watch() -> None:
    watchdog_pass()


_loop = BackgroundLoop("opsite-alert-watchdog", _watch, lambda: settings.OPSITE_ALERT_WATCHDOG_S)


def watchdog_start(role: str) -> None:
    """Started with the process's node reporter; off when OPSITE_ALERT_WATCHDOG_S is 0."""
    if settings.OPSITE_ALERT_WATCHDOG_S > 0:
        _loop.ensure_running()
