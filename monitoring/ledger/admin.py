"""The run ledger in the admin: every run of a scheduled job, and every deploy, read-only."""

from django.contrib import admin

from common.formats import duration, table
from monitoring.admin_base import ReadOnlyAdmin
from monitoring.ledger.models import Deployment, TaskRun


@admin.register(TaskRun)
class TaskRunAdmin(ReadOnlyAdmin):
    list_display = ["job", "scheduled_for", "status", "started_at", "took", "node"]
    list_filter = ["status", "job"]
    date_hierarchy = "scheduled_for"
    search_fields = ["job", "task_id"]

    @admin.display(description="duration", ordering="duration_ms")
    def took(self, obj: TaskRun) -> str:
        return "-" if obj.duration_ms is None else duration(obj.duration_ms / 1000)


@admin.register(Deployment)
class DeploymentAdmin(ReadOnlyAdmin):
    list_display = ["started_at", "kind", "version", "previous_version", "result", "by", "layout", "finished_at"]
    list_filter = ["kind", "result", "layout"]
    exclude = ["gate", "steps", "migrations"]
    readonly_fields = ["gate_figures", "steps_taken", "migrations_applied"]

    @admin.display(description="health gate")
    def gate_figures(self, obj: Deployment) -> str:
        return table(obj.gate, ("figure", "value"))

    @admin.display(description="steps")
    def steps_taken(self, obj: Deployment) -> str:
        return table(obj.steps)

    @admin.display(description="migrations applied")
    def migrations_applied(self, obj: Deployment) -> str:
        return table(obj.migrations)

    date_hierarchy = "started_at"
    search_fields = ["version", "previous_version", "by", "reason"]
