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
    PeriodicJob(
        name="monitoring: alert evaluation",
        task="monitoring.alerts_evaluate",
        every=timedelta(seconds=15),
        expires_s=15,
        description="Evaluates the enabled alert rules, then sends the notifications that are due.",
    ),
    PeriodicJob(
        name="monitoring: scheduled runs audit",
        task="monitoring.task_runs_audit",
        crontab={"minute": "*"},
        expires_s=50,
        description="Records slots of scheduled jobs that passed without a run as missed.",
    ),
    PeriodicJob(
        name="monitoring: cache warming",
        task="monitoring.cache_warm",
        crontab={"minute": "*"},
        expires_s=50,
        description="Puts the dashboard's series and tables and today's orders in the cache ahead of readers.",
    ),
]
