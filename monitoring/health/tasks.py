from __future__ import annotations

from celery import shared_task

from monitoring.health.selectors import BEAT
from monitoring.health.services import heartbeat_record


@shared_task(name="monitoring.beat_heartbeat", time_limit=30, soft_time_limit=20, ignore_result=True)
def beat_heartbeat_task() -> None:
    """Sent by beat, run by a worker: its age says both are alive and the queue moves."""
    heartbeat_record(name=BEAT)
