"""The run ledger in the admin: every run of a scheduled job, read-only."""

from django.contrib import admin

from monitoring.admin_base import ReadOnlyAdmin
from monitoring.ledger.models import TaskRun


@admin.register(TaskRun)
class TaskRunAdmin(ReadOnlyAdmin):
    list_display = ["job", "scheduled_for", "status", "started_at", "duration_ms", "node"]
    list_filter = ["status", "job"]
    date_hierarchy = "scheduled_for"
    search_fields = ["job", "task_id"]
