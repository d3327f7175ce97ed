from __future__ import annotations

import csv
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, StreamingHttpResponse
from django.urls import path

from common.formats import measurement
from monitoring.admin_base import ReadOnlyAdmin
from monitoring.history.models import CLUSTER, MetricSnapshot, RestaurantSnapshot

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


class HostFilter(admin.SimpleListFilter):
    title = "host (* = all hosts together)"
    parameter_name = "host"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        hosts = MetricSnapshot.objects.order_by("host").values_list("host", flat=True).distinct()
        return [(h, "all hosts together (*)" if h == CLUSTER else h) for h in hosts]

    def queryset(self, request: HttpRequest, queryset: QuerySet[MetricSnapshot]) -> QuerySet[MetricSnapshot]:
        return queryset if self.value() is None else queryset.filter(host=self.value())


@admin.register(MetricSnapshot)
class MetricSnapshotAdmin(SnapshotAdmin):
    # traffic first (rate, errors, p95), then the host's resources: no sideways scrolling at 1440 px
    list_display = ["taken_at", "host_shown", "resolution", "rate", "errors_shown", "p95", "cpu", "memory", "sockets",
                    "queue_depth"]  # fmt: skip
    list_filter = ["resolution", HostFilter]
    exclude = ["latency_histogram"]
    csv_fields = ["taken_at", "host", "resolution", "nodes", "cpu_percent", "memory_percent", "disk_percent",
                  "load_1", "process_rss_bytes", "open_files", "requests", "errors", "slow_requests",
                  "request_rate", "error_rate", "p50_ms", "p95_ms", "p99_ms", "sockets", "db_connections",
                  "db_size_bytes", "redis_memory_bytes", "redis_clients", "queue_depth", "workers"]  # fmt: skip
    change_list_template = "admin/monitoring/snapshot_change_list.html"

    @admin.display(description="host", ordering="host")
    def host_shown(self, row: MetricSnapshot) -> str:
        return "all hosts (*)" if row.host == CLUSTER else row.host

    @admin.display(description="requests/s", ordering="request_rate")
    def rate(self, row: MetricSnapshot) -> str:
        return measurement(row.request_rate, "/s")

    @admin.display(description="errors", ordering="error_rate")
    def errors_shown(self, row: MetricSnapshot) -> str:
        return measurement(None if row.error_rate is None else row.error_rate * 100, "%")

    @admin.display(description="p95", ordering="p95_ms")
    def p95(self, row: MetricSnapshot) -> str:
        return measurement(row.p95_ms, "ms")

    @admin.display(description="CPU", ordering="cpu_percent")
    def cpu(self, row: MetricSnapshot) -> str:
        return measurement(row.cpu_percent, "%")

    @admin.display(description="memory", ordering="memory_percent")
    def memory(self, row: MetricSnapshot) -> str:
        return measurement(row.memory_percent, "%")


@admin.register(RestaurantSnapshot)
class RestaurantSnapshotAdmin(SnapshotAdmin):
    list_display = ["taken_at", "restaurant", "resolution", "orders", "paid", "revenue"]
    list_filter = ["resolution", "restaurant"]
    list_select_related = ["restaurant"]
    csv_fields = ["taken_at", "restaurant__slug", "resolution", "orders", "paid", "revenue"]
    change_list_template = "admin/monitoring/snapshot_change_list.html"
