from datetime import timedelta

from opsite.scheduling import PeriodicJob

JOBS = [
    PeriodicJob(
        name="monitoring: beat heartbeat",
        task="monitoring.beat_heartbeat",
        every=timedelta(seconds=30),
        expires_s=30,
        description="Dead-man's switch: its age shows in /health/detailed and /metrics.",
    ),
]
