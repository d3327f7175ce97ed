"""The history subsystem's scheduled jobs (see common.scheduling)."""

from common.scheduling import PeriodicJob

JOBS = [
    PeriodicJob(
        name="monitoring: metric snapshot",
        task="monitoring.snapshot_collect",
        crontab={"minute": "*"},
        expires_s=50,
        description="Every live host's figures and the installation's, once a minute.",
    ),
    PeriodicJob(
        name="monitoring: snapshot rollup",
        task="monitoring.snapshot_rollup",
        crontab={"minute": "4"},
        expires_s=1800,
        description="Hour rows from finished hours' minute rows (merged histograms).",
    ),
    PeriodicJob(
        name="monitoring: snapshot retention",
        task="monitoring.snapshot_prune",
        crontab={"minute": "17", "hour": "3"},
        expires_s=3600,
        description="Deletes minute and hour rows past OPSITE_SNAPSHOT_MINUTE_DAYS / _HOUR_DAYS, in batches.",
    ),
]
