"""The dashboard subsystem's scheduled jobs (see common.scheduling)."""

from common.scheduling import PeriodicJob

JOBS = [
    PeriodicJob(
        name="monitoring: cache warming",
        task="monitoring.cache_warm",
        crontab={"minute": "*"},
        expires_s=50,
        description="Puts the dashboard's series and tables and today's orders in the cache ahead of readers.",
    ),
]
