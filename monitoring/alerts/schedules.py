"""The alerts subsystem's scheduled jobs (see common.scheduling)."""

from datetime import timedelta

from common.scheduling import PeriodicJob

JOBS = [
    PeriodicJob(
        name="monitoring: alert evaluation",
        task="monitoring.alerts_evaluate",
        every=timedelta(seconds=15),
        expires_s=15,
        description="Evaluates the enabled alert rules, then sends the notifications that are due.",
    ),
]
