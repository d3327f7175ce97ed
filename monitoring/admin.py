"""The monitoring app's admin pages, each defined with its subsystem; imported here, where
Django's admin looks for them."""

from monitoring.alerts import admin as alerts_admin  # noqa: F401
from monitoring.health import admin as health_admin  # noqa: F401
from monitoring.history import admin as history_admin  # noqa: F401
from monitoring.ledger import admin as ledger_admin  # noqa: F401
from monitoring.nodes import admin as nodes_admin  # noqa: F401
from monitoring.requests import admin as requests_admin  # noqa: F401
