from __future__ import annotations

import csv
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, StreamingHttpResponse
from django.urls import path

from monitoring.admin_base import ReadOnlyAdmin
from monitoring.history.models import MetricSnapshot, RestaurantSnapshot

admin.site.index_template = "admin/opsite_index.html"  # the dashboard's tiles above the app list


def _csv_response(queryset: QuerySet[Any], fields: list[str], filename: str) -> StreamingHttpResponse:
    """Streamed, so exporting months of rows never holds them all in memory."""

    class Echo:
        def write(self, value: str) -> str:
            return value

    writer = csv.writer(Echo())

    def rows() -> Any:
        yield writer.writerow(fields)
        for row in queryset.values_list(*fields).iterator(chunk_size=2000):
            yield writer.writerow(row)

    response = StreamingHttpResponse(rows(), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class SnapshotAdmin(ReadOnlyAdmin):
    date_hierarchy = "taken_at"
    actions = ["export_csv"]
    csv_fields: list[str] = []

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # retention prunes them

    @admin.action(description="Export the selected rows as CSV")
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Any]) -> StreamingHttpResponse:
        return _csv_response(queryset.order_by("taken_at"), self.csv_fields, f"{self.model._meta.model_name}.csv")

    def get_urls(self) -> list[Any]:
        info = self.model._meta.app_label, self.model._meta.model_name
        return [
            path("export.csv", self.admin_site.admin_view(self.export_filtered), name=f"{info[0]}_{info[1]}_export"),
            *super().get_urls(),
        ]

    def export_filtered(self, request: HttpRequest) -> StreamingHttpResponse:
        """Every row the change list shows with its current filters, not just one page."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        changelist = self.get_changelist_instance(request)
        return _csv_response(changelist.get_queryset(request).order_by("taken_at"), self.csv_fields,
                             f"{self.model._meta.model_name}.csv")  # fmt: skip


@admin.register(MetricSnapshot)
class MetricSnapshotAdmin(SnapshotAdmin):
    list_display = ["taken_at", "host", "resolution", "nodes", "cpu_percent", "memory_percent", "disk_percent",
                    "request_rate", "error_rate", "p95_ms", "sockets", "db_connections", "queue_depth"]  # fmt: skip
    list_filter = ["resolution", "host"]
    exclude = ["latency_histogram"]
    csv_fields = ["taken_at", "host", "resolution", "nodes", "cpu_percent", "memory_percent", "disk_percent",
                  "load_1", "process_rss_bytes", "open_files", "requests", "errors", "slow_requests",
                  "request_rate", "error_rate", "p50_ms", "p95_ms", "p99_ms", "sockets", "db_connections",
                  "db_size_bytes", "redis_memory_bytes", "redis_clients", "queue_depth", "workers"]  # fmt: skip
    change_list_template = "admin/monitoring/snapshot_change_list.html"


@admin.register(RestaurantSnapshot)
class RestaurantSnapshotAdmin(SnapshotAdmin):
    list_display = ["taken_at", "restaurant", "resolution", "orders", "paid", "revenue"]
    list_filter = ["resolution", "restaurant"]
    list_select_related = ["restaurant"]
    csv_fields = ["taken_at", "restaurant__slug", "resolution", "orders", "paid", "revenue"]
    change_list_template = "admin/monitoring/snapshot_change_list.html"
