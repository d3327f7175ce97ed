"""The monitoring app's Celery tasks, each defined with its subsystem; imported here, where
Celery's autodiscovery looks for them. Task names are fixed (``monitoring.*``), so moving a
task between modules never orphans a scheduled job."""

from monitoring.alerts import tasks as alerts_tasks  # noqa: F401
from monitoring.dashboard import tasks as dashboard_tasks  # noqa: F401
from monitoring.health import tasks as health_tasks  # noqa: F401
from monitoring.history import tasks as history_tasks  # noqa: F401
from monitoring.ledger import tasks as ledger_tasks  # noqa: F401
