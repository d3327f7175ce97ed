from datetime import timedelta

from common.scheduling import PeriodicJob

JOBS = [
    PeriodicJob(
        name="realtime: re-send unpublished order events",
        task="realtime.outbox_sweep",
        every=timedelta(seconds=10),
        expires_s=10,
        description="Events committed while the channel layer was down are broadcast once it is back.",
    ),
]
