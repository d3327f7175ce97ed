"""The health subsystem's scheduled jobs (see common.scheduling)."""

from datetime import timedelta

from common.scheduling import PeriodicJob

JOBS = [
    PeriodicJob(
        name="monitoring: beat heartbeat",
        task="monitoring.beat_heartbeat",
        every=timedelta(seconds=15),
        expires_s=15,
        description="Dead-man's switch: its age shows in /health/detailed and /metrics.",
    ),
]
