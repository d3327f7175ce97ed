from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

from common.formats import duration, size, table

from .models import Backup, RestoreDrill
from .storage import backup_storage
from .tasks import backup_create_task, backup_verify_task, drill_task


@admin.register(Backup)
class BackupAdmin(admin.ModelAdmin):
    list_display = ["id", "status", "reason", "engine", "size", "age", "verified", "dump_seconds", "upload_seconds",
                    "verify_seconds", "download"]  # fmt: skip
    list_filter = ["status", "engine", "reason"]
    date_hierarchy = "started_at"
    readonly_fields = [f.name for f in Backup._meta.fields if f.name not in ("row_counts", "migrations")] + [
        "rows_per_table", "migrations_applied"]  # fmt: skip
    actions = ["verify_selected"]
    change_list_template = "admin/backups/backup/change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="size", ordering="size_bytes")
    def size(self, obj: Backup) -> str:
        return size(obj.size_bytes)

    @admin.display(description="row counts (at the dump's snapshot)")
    def rows_per_table(self, obj: Backup) -> str:
        return table(obj.row_counts, ("table", "rows"))

    @admin.display(description="migrations (latest applied per app)")
    def migrations_applied(self, obj: Backup) -> str:
        return table(obj.migrations, ("app", "migration"))

    @admin.display(description="age")
    def age(self, obj: Backup) -> str:
        return timesince(obj.started_at, timezone.now())

    @admin.display(description="verified", boolean=True)
    def verified(self, obj: Backup) -> bool:
        return obj.is_good

    @admin.display(description="file")
    def download(self, obj: Backup) -> str:
        if not obj.path or obj.status in (Backup.Status.RUNNING, Backup.Status.FAILED):
            return ""
        return format_html('<a href="{}">download</a>', reverse("admin:backups_backup_download", args=[obj.pk]))

    def has_run_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("backups.run_backup"))

    @admin.action(description="Verify the selected backups by restore (queued)", permissions=["run"])
    def verify_selected(self, request: HttpRequest, queryset: QuerySet[Backup]) -> None:
        for backup in queryset:
            backup_verify_task.delay(backup.pk)
        self.message_user(request, f"{queryset.count()} verification(s) queued.", messages.SUCCESS)

    def back_up_now_view(self, request: HttpRequest) -> HttpResponseRedirect:
        if request.method != "POST" or not self.has_run_permission(request):
            raise PermissionDenied("starting a backup needs the run_backup permission, by POST from the backup list")
        backup_create_task.delay("admin")
        self.message_user(request, "A backup is queued; it is verified once it finishes.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:backups_backup_changelist"))

    def get_urls(self) -> list[Any]:
        return [
            path("<int:pk>/download/", self.admin_site.admin_view(self.download_view), name="backups_backup_download"),
            path("back-up-now/", self.admin_site.admin_view(self.back_up_now_view), name="backups_backup_now"),
            *super().get_urls(),
        ]

    def download_view(self, request: HttpRequest, pk: int) -> FileResponse:
        if not request.user.has_perm("backups.download_backup"):
            raise PermissionDenied("you may not download backups")
        backup = Backup.objects.filter(pk=pk).first()
        storage = backup_storage()
        if backup is None or not backup.path or not storage.exists(backup.path):
            raise Http404("no such backup file")
        return FileResponse(
            storage.open(backup.path, "rb"), as_attachment=True, filename=backup.path.rsplit("/", 1)[-1]
        )


@admin.register(RestoreDrill)
class RestoreDrillAdmin(admin.ModelAdmin):
    list_display = ["id", "status", "reason", "started_at", "rto", "base", "segments", "restored_to", "error"]
    list_filter = ["status", "reason"]
    readonly_fields = [f.name for f in RestoreDrill._meta.fields if f.name != "checks"] + ["checked"]
    exclude = ["checks"]
    change_list_template = "admin/backups/restoredrill/change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="restore time", ordering="rto_seconds")
    def rto(self, obj: RestoreDrill) -> str:
        return "-" if obj.rto_seconds is None else duration(obj.rto_seconds)

    @admin.display(description="checks in the restored copy")
    def checked(self, obj: RestoreDrill) -> str:
        return table(obj.checks)

    def drill_now_view(self, request: HttpRequest) -> HttpResponseRedirect:
        if request.method != "POST" or not request.user.has_perm("backups.run_backup"):
            raise PermissionDenied("starting a restore drill needs the run_backup permission, by POST from the list")
        drill_task.delay("admin")
        self.message_user(request, "A restore drill is queued; it appears here when it finishes.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:backups_restoredrill_changelist"))

    def get_urls(self) -> list[Any]:
        return [
            path("drill-now/", self.admin_site.admin_view(self.drill_now_view), name="backups_restoredrill_now"),
            *super().get_urls(),
        ]
