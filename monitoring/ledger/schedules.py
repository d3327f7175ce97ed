"""The ledger subsystem's scheduled jobs (see common.scheduling)."""

from common.scheduling import PeriodicJob

JOBS = [
    PeriodicJob(
        name="monitoring: scheduled runs audit",
        task="monitoring.task_runs_audit",
        crontab={"minute": "*"},
        expires_s=50,
        description="Records slots of scheduled jobs that passed without a run as missed.",
    ),
]
