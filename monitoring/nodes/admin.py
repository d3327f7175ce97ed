from __future__ import annotations

from django.contrib import admin

from monitoring.admin_base import ReadOnlyAdmin
from monitoring.nodes.models import NodeReport


@admin.register(NodeReport)
class NodeReportAdmin(ReadOnlyAdmin):
    list_display = ["node", "host", "role", "reported_at", "expires_at"]
    list_filter = ["role", "host"]
