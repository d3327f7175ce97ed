from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register


@register("backups")
def check_time_limit_below_visibility_timeout(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    timeout = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout")
    if timeout is not None and timeout <= settings.OPSITE_BACKUP_TIME_LIMIT_S:
        return [
            Error(
                f"OPSITE_BACKUP_TIME_LIMIT_S ({settings.OPSITE_BACKUP_TIME_LIMIT_S}) is not below the broker's "
                f"visibility timeout ({timeout}): a long backup would be handed to a second worker.",
                id="backups.E001",
            )
        ]
    return []
