from __future__ import annotations

from django.contrib import admin

from monitoring.admin_base import ReadOnlyAdmin
from monitoring.health.models import Heartbeat


@admin.register(Heartbeat)
class HeartbeatAdmin(ReadOnlyAdmin):
    list_display = ["name", "at", "node"]
