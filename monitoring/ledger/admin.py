"""The run ledger in the admin: every run of a scheduled job, and every deploy, read-only."""

from django.contrib import admin

from monitoring.admin_base import ReadOnlyAdmin
from monitoring.ledger.models import Deployment, TaskRun


@admin.register(TaskRun)
class TaskRunAdmin(ReadOnlyAdmin):
    list_display = ["job", "scheduled_for", "status", "started_at", "duration_ms", "node"]
    list_filter = ["status", "job"]
    date_hierarchy = "scheduled_for"
    search_fields = ["job", "task_id"]


@admin.register(Deployment)
class DeploymentAdmin(ReadOnlyAdmin):
    list_display = ["started_at", "kind", "version", "previous_version", "result", "by", "layout", "finished_at"]
    list_filter = ["kind", "result", "layout"]
    date_hierarchy = "started_at"
    search_fields = ["version", "previous_version", "by", "reason"]
