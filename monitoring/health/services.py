from __future__ import annotations

from django.conf import settings
from django.utils import timezone

from monitoring.health.models import Heartbeat


def heartbeat_record(*, name: str) -> None:
    Heartbeat.objects.update_or_create(name=name, defaults={"at": timezone.now(), "node": settings.OPSITE_NODE_NAME})
