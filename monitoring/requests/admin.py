from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from monitoring.admin_base import ReadOnlyAdmin
from monitoring.requests.advisor import AdvisorUnavailable, duplicate_indexes, suggest, unused_indexes
from monitoring.requests.models import FrontendErrorGroup, Profile, ProfileArm, QueryFingerprint, SlowRequest
from monitoring.requests.pgstat import statement_deltas
from monitoring.requests.queries import explain, n_plus_one_suspects, top_queries
from monitoring.requests.report import statement_report
from monitoring.requests.traffic import FRONTEND, window


@admin.register(QueryFingerprint)
class QueryFingerprintAdmin(ReadOnlyAdmin):
    list_display = ["fingerprint", "short_sql", "n_plus_one_route", "first_seen", "last_seen"]
    list_filter = ["last_n_plus_one"]
    search_fields = ["fingerprint", "normalized", "n_plus_one_route"]
    readonly_fields = ["fingerprint", "normalized", "first_seen", "last_seen", "n_plus_one_route", "last_n_plus_one"]
    actions = ["explain_selected", "suggest_indexes"]

    @admin.display(description="statement")
    def short_sql(self, obj: QueryFingerprint) -> str:
        return obj.normalized[:120]

    @admin.action(description="EXPLAIN the statement (generic plan, no values; rolled back, with a timeout)")
    def explain_selected(self, request: HttpRequest, queryset: QuerySet[QueryFingerprint]) -> None:
        for row in queryset[:5]:
            try:
                plan = explain(row.normalized)
            except Exception as exc:
                self.message_user(request, f"{row.fingerprint}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{row.fingerprint}:\n{plan}", messages.INFO)

    @admin.action(description="Suggest indexes (tried with HypoPG, or a rolled-back trial index)")
    def suggest_indexes(self, request: HttpRequest, queryset: QuerySet[QueryFingerprint]) -> None:
        for row in queryset[:5]:
            try:
                tips = suggest(row.normalized, allow_trial=request.user.is_superuser)  # others: HypoPG only
            except (AdvisorUnavailable, ValueError) as exc:
                self.message_user(request, f"{row.fingerprint}: {exc}", messages.WARNING)
                continue
            if not tips:
                self.message_user(request, f"{row.fingerprint}: no index would lower its cost by 10 % or more")
            for tip in tips:
                self.message_user(request, f"{row.fingerprint}: {tip.candidate.ddl} — plan cost {tip.cost_before} → "
                                           f"{tip.cost_after} (-{tip.gain_pct} %, {tip.method})")  # fmt: skip

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view
        extra = [path("live/", view(self.live_view), name="monitoring_queries_live"),
                 path("advisor/", view(self.advisor_view), name="monitoring_index_advisor")]  # fmt: skip
        return extra + super().get_urls()

    def advisor_view(self, request: HttpRequest) -> TemplateResponse:
        """Index suggestions for the heaviest SELECTs of the last hour, unused and duplicate indexes."""
        if not self.has_view_permission(request):
            raise PermissionDenied("the index advisor needs the view_queryfingerprint permission")
        context: dict[str, Any] = {**self.admin_site.each_context(request), "title": "Index advisor"}
        try:
            # building a trial index (no HypoPG) takes a lock: only a superuser's visit does it
            report = statement_report(minutes=60, limit=10, with_advice=True, allow_trial=request.user.is_superuser)
            context.update(statements=[row for row in report["statements"] if row["sql"].lower().startswith("select")],
                           unused=unused_indexes(), duplicates=duplicate_indexes())  # fmt: skip
        except AdvisorUnavailable as exc:
            context["unavailable"] = str(exc)
        return TemplateResponse(request, "admin/monitoring/advisor.html", context)

    def live_view(self, request: HttpRequest) -> TemplateResponse:
        """The heaviest statements and the N+1 suspects over the last hour, across all processes."""
        if not self.has_view_permission(request):
            raise PermissionDenied("viewing query statistics needs the view_queryfingerprint permission")
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


EXTERNAL_FONT_CSS = "https://fonts.googleapis.com/css"
CALL_TREE_POLICY = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline' data:; "
                    "img-src data:; font-src data:; base-uri 'none'; form-action 'none'")  # fmt: skip


@admin.register(Profile)
class ProfileAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "kind", "name", "profiler", "duration_ms", "queries", "request_id", "links"]
    list_filter = ["kind", "profiler"]
    search_fields = ["name", "request_id", "path"]
    date_hierarchy = "created_at"
    exclude = ["html", "speedscope", "pstats"]
    readonly_fields = ["kind", "name", "profiler", "request_id", "method", "path", "status_code", "duration_ms",
                       "queries", "query_ms", "user", "truncated", "created_at", "links"]  # fmt: skip

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.has_perm("monitoring.profile_requests")) or super().has_view_permission(request, obj)

    @admin.display(description="files")
    def links(self, obj: Profile) -> str:
        base = f"../{obj.pk}" if obj.pk else ""
        parts = [format_html('<a href="{}/calltree/" target="_blank">call tree</a>', base)]
        if obj.profiler == Profile.Profiler.PYINSTRUMENT:
            parts.append(format_html('<a href="{}/speedscope/">speedscope</a>', base))
        else:
            parts.append(format_html('<a href="{}/pstats/">.prof</a>', base))
        return format_html_join(" · ", "{}", ((p,) for p in parts))

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/calltree/", view(self.call_tree), name="monitoring_profile_calltree"),
            path("<int:pk>/speedscope/", view(self.download_speedscope), name="monitoring_profile_speedscope"),
            path("<int:pk>/pstats/", view(self.download_pstats), name="monitoring_profile_pstats"),
            *super().get_urls(),
        ]

    def _profile(self, request: HttpRequest, pk: int) -> Profile:
        if not self.has_view_permission(request):
            raise PermissionDenied
        found = Profile.objects.filter(pk=pk).first()
        if found is None:
            raise Http404("no such profile")
        return found

    def call_tree(self, request: HttpRequest, pk: int) -> HttpResponse:
        # pyinstrument's page asks Google for a web font: the page is served without it, and its
        # policy lets it load nothing from anywhere else (the browser's own fonts are used)
        html = self._profile(request, pk).html.replace(EXTERNAL_FONT_CSS, "data:text/css,")
        response = HttpResponse(html)
        response["Content-Security-Policy"] = CALL_TREE_POLICY
        return response

    def download_speedscope(self, request: HttpRequest, pk: int) -> HttpResponse:
        response = HttpResponse(self._profile(request, pk).speedscope, content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="profile-{pk}.speedscope.json"'
        return response

    def download_pstats(self, request: HttpRequest, pk: int) -> HttpResponse:
        response = HttpResponse(bytes(self._profile(request, pk).pstats), content_type="application/octet-stream")
        response["Content-Disposition"] = f'attachment; filename="profile-{pk}.prof"'
        return response


@admin.register(ProfileArm)
class ProfileArmAdmin(admin.ModelAdmin):
    list_display = ["target", "name", "profiler", "remaining", "expires_at", "created_by"]
    exclude = ["created_by"]

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        return {"expires_at": timezone.now() + timedelta(hours=1)}

    def save_model(self, request: HttpRequest, obj: ProfileArm, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)


@admin.register(SlowRequest)
class SlowRequestAdmin(ReadOnlyAdmin):
    """Where an exemplar on /metrics (a request id or trace id) and a spike on the latency chart lead."""

    list_display = [
        "created_at",
        "route",
        "status_code",
        "duration_ms",
        "queries",
        "query_ms",
        "request_id",
        "trace_id",
    ]
    list_filter = ["status_code", "method"]
    search_fields = ["=request_id", "=trace_id", "route"]
    date_hierarchy = "created_at"
    exclude = ["statements"]
    readonly_fields = ["request_id", "trace_id", "route", "method", "path", "status_code", "duration_ms", "queries",
                       "query_ms", "created_at", "statement_table", "profiles"]  # fmt: skip

    @admin.display(description="statements (slowest first; normalized, no values)")
    def statement_table(self, obj: SlowRequest) -> str:
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            ((s["count"], f'{s["ms"]:.2f} ms', s["fingerprint"], s["sql"]) for s in obj.statements),
        )  # fmt: skip
        return format_html("<table><tr><th>runs</th><th>time</th><th>fingerprint</th><th>statement</th></tr>{}</table>",
                           rows)  # fmt: skip

    @admin.display(description="profiles of this request")
    def profiles(self, obj: SlowRequest) -> str:
        found = Profile.objects.filter(request_id=obj.request_id).values_list("pk", "profiler")
        if not found:
            return "none taken (arm a profile for this route in Profile arms)"
        return format_html_join(
            " · ", '<a href="{}">{} profile {}</a>',
            ((reverse("admin:monitoring_profile_change", args=[pk]), profiler, pk) for pk, profiler in found),
        )  # fmt: skip
