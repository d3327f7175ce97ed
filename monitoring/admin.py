from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import path

from .models import FrontendErrorGroup, Heartbeat, QueryFingerprint
from .pgstat import statement_deltas
from .queries import explain, n_plus_one_suspects, top_queries
from .traffic import FRONTEND, window


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(QueryFingerprint)
class QueryFingerprintAdmin(ReadOnlyAdmin):
    list_display = ["fingerprint", "short_sql", "n_plus_one_route", "first_seen", "last_seen"]
    list_filter = ["last_n_plus_one"]
    search_fields = ["fingerprint", "normalized", "n_plus_one_route"]
    readonly_fields = ["fingerprint", "normalized", "sample_sql", "sample_params", "first_seen", "last_seen",
                       "n_plus_one_route", "last_n_plus_one"]  # fmt: skip
    actions = ["explain_selected"]

    @admin.display(description="statement")
    def short_sql(self, obj: QueryFingerprint) -> str:
        return obj.normalized[:120]

    @admin.action(description="EXPLAIN the sample (rolled back, with a statement timeout)")
    def explain_selected(self, request: HttpRequest, queryset: QuerySet[QueryFingerprint]) -> None:
        for row in queryset[:5]:
            try:
                plan = explain(row.sample_sql, json.loads(row.sample_params or "[]"))
            except Exception as exc:
                self.message_user(request, f"{row.fingerprint}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{row.fingerprint}:\n{plan}", messages.INFO)

    def get_urls(self) -> list[Any]:
        extra = [path("live/", self.admin_site.admin_view(self.live_view), name="monitoring_queries_live")]
        return extra + super().get_urls()

    def live_view(self, request: HttpRequest) -> TemplateResponse:
        """The heaviest statements and the N+1 suspects over the last hour, across all processes."""
        context = {
            **self.admin_site.each_context(request),
            "title": "Query statistics (last hour)",
            "queries": top_queries(60, limit=50),
            "suspects": n_plus_one_suspects(60),
            "database": statement_deltas(limit=30),
            "screens": sorted(
                ((k, v.as_dict()) for k, v in window(60, namespace=FRONTEND).items() if k != "*"),
                key=lambda item: -item[1]["requests"],
            ),
        }
        return TemplateResponse(request, "admin/monitoring/live.html", context)


@admin.register(FrontendErrorGroup)
class FrontendErrorGroupAdmin(ReadOnlyAdmin):
    list_display = ["error_type", "short_message", "screen", "count", "first_seen", "last_seen", "restaurant"]
    list_filter = ["error_type", "screen", "restaurant"]
    search_fields = ["message", "error_type", "fingerprint"]
    date_hierarchy = "last_seen"
    readonly_fields = [f.name for f in FrontendErrorGroup._meta.fields]

    @admin.display(description="message")
    def short_message(self, obj: FrontendErrorGroup) -> str:
        return obj.message[:100]


@admin.register(Heartbeat)
class HeartbeatAdmin(ReadOnlyAdmin):
    list_display = ["name", "at", "node"]
