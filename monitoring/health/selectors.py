from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from monitoring.health.models import Heartbeat

BEAT = "beat"
EVALUATOR = "alerts.evaluator"  # written by each scheduled alert evaluation
WATCHDOG = "alerts.watchdog"  # the watchdog's lease: when it last stood in for the evaluator


def heartbeat_age_s(name: str, *, now: datetime | None = None) -> float | None:
    at = Heartbeat.objects.filter(name=name).values_list("at", flat=True).first()
    return None if at is None else ((now or timezone.now()) - at).total_seconds()


def beat_heartbeat_age_s() -> float | None:
    return heartbeat_age_s(BEAT)
