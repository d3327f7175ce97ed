"""The monitoring app's scheduled jobs, each listed with its subsystem; gathered here, where
common.scheduling looks for an app's jobs."""

from monitoring.alerts import schedules as alerts
from monitoring.dashboard import schedules as dashboard
from monitoring.health import schedules as health
from monitoring.history import schedules as history
from monitoring.ledger import schedules as ledger

JOBS = [*health.JOBS, *history.JOBS, *alerts.JOBS, *ledger.JOBS, *dashboard.JOBS]
