from datetime import timedelta

from common.scheduling import PeriodicJob

JOBS = [
    PeriodicJob(
        name="backups: daily backup (verified after)",
        task="backups.create",
        crontab={"minute": "30", "hour": "2"},
        expires_s=3600,
        kwargs={"reason": "scheduled"},
    ),
    PeriodicJob(
        name="backups: retention", task="backups.retention", crontab={"minute": "15", "hour": "4"}, expires_s=3600
    ),
    PeriodicJob(
        name="backups: daily base backup (point in time)",
        task="backups.base",
        crontab={"minute": "45", "hour": "2"},
        expires_s=3600,
    ),
    PeriodicJob(
        name="backups: weekly restore drill",
        task="backups.drill",
        crontab={"minute": "30", "hour": "4", "day_of_week": "0"},
        expires_s=3600,
        kwargs={"reason": "scheduled"},
    ),
    PeriodicJob(name="backups: reap dead runs", task="backups.reap", every=timedelta(minutes=5), expires_s=300),
]
