from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from common.http import ApiError, read_json_body
from monitoring import lifecycle, prometheus
from monitoring.auth import can_view_dashboard, ops_access
from monitoring.dashboard import figures as dashboard
from monitoring.dashboard.selectors import orders_today
from monitoring.health import dependencies
from monitoring.health import probes as health
from monitoring.requests import frontend
from monitoring.requests.selectors import traffic_summary
from monitoring.requests.services import frontend_error_record
from monitoring.requests.traffic import FRONTEND, get_recorder
from realtime.auth import restaurant_from_request

REPORT_MAX_BYTES = 256 * 1024


@never_cache
@require_GET
def health_summary(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {
            "status": "ok",
            "service": "opsite",
            "version": settings.OPSITE_VERSION,
            "uptime_seconds": round(lifecycle.uptime_seconds(), 1),
            "timestamp": timezone.now().isoformat(),
        }
    )


@never_cache
@require_GET
def health_live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "alive"})


@never_cache
@require_GET
def health_ready(request: HttpRequest) -> JsonResponse:
    if lifecycle.draining():
        return JsonResponse({"status": "not_ready", "reason": "shutting_down", "checks": {}}, status=503)
    ready, results = health.readiness()
    checks = {name: result.as_dict() for name, result in results.items()}
    if ready:
        return JsonResponse({"status": "ready", "checks": checks})
    return JsonResponse({"status": "not_ready", "checks": checks}, status=503)


@never_cache
@require_GET
@ops_access()
def health_detailed(request: HttpRequest) -> JsonResponse:
    status, report = health.detailed_report()
    return JsonResponse(report, status=503 if status == health.UNHEALTHY else 200)


@never_cache
@require_GET
@ops_access()
def health_dependencies(request: HttpRequest) -> JsonResponse:
    results = dependencies.check_all()
    status = "ok" if all(r["status"] == "ok" for r in results) else "degraded"
    return JsonResponse({"status": status, "dependencies": results})


@never_cache
@require_GET
@ops_access()
def health_stats(request: HttpRequest) -> JsonResponse:
    from realtime.presence import presence_summary

    return JsonResponse(
        {
            "timestamp": timezone.now().isoformat(),
            "requests": traffic_summary(per_route=request.GET.get("routes") != "0"),
            "orders_today": orders_today(),
            "sockets": presence_summary(),
        }
    )


@never_cache
@require_GET
@ops_access(allow_networks=True)
def metrics(request: HttpRequest) -> HttpResponse:
    return HttpResponse(prometheus.exposition(), content_type="text/plain; version=0.0.4; charset=utf-8")


def _accepted_reports(
    request: HttpRequest, scope: str, clean: Callable[[Any], tuple[list[frontend.Report], dict[str, str]]]
) -> tuple[Any, list[frontend.Report]]:
    """The restaurant and its cleaned reports, or an ApiError (401 / 413 / 415 / 400 / 429)."""
    restaurant = restaurant_from_request(request, scope=scope, per_minute=settings.OPSITE_FRONTEND_RATE_PER_MINUTE)
    payload = read_json_body(request, max_bytes=REPORT_MAX_BYTES)
    try:
        cleaned, errors = clean(payload)
    except ValueError as exc:
        raise ApiError(400, "invalid", str(exc)) from exc
    if errors:
        raise ApiError(400, "invalid", "some fields are invalid", fields=errors)
    return restaurant, cleaned


@csrf_exempt
@require_POST
def frontend_metrics(request: HttpRequest) -> JsonResponse:
    try:
        restaurant, reports = _accepted_reports(request, "frontend-metrics", frontend.clean_metrics)
    except ApiError as exc:
        return exc.response()
    recorder = get_recorder(FRONTEND)
    for report in reports:
        label = frontend.SCREENS.admit(restaurant.slug, f"{report['screen']}/{report['action']}")
        recorder.record(label, report["duration_ms"], 200)
    return JsonResponse({"accepted": len(reports)}, status=202)


@csrf_exempt
@require_POST
def frontend_errors(request: HttpRequest) -> JsonResponse:
    try:
        restaurant, reports = _accepted_reports(request, "frontend-errors", frontend.clean_errors)
    except ApiError as exc:
        return exc.response()
    with transaction.atomic():  # all or nothing, like ingest
        groups = [frontend_error_record(report=report, restaurant=restaurant) for report in reports]
    return JsonResponse({"accepted": len(groups), "groups": [g.fingerprint for g in groups]}, status=202)


def dashboard_access(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Anonymous: the login page (or 401 for the JSON endpoints); without the permission: 403."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            if request.path.startswith("/ops/api/"):
                return JsonResponse({"error": "unauthorized", "message": "log in first"}, status=401)
            return redirect_to_login(request.get_full_path())
        if not can_view_dashboard(request.user):
            if request.path.startswith("/ops/api/"):
                return JsonResponse({"error": "forbidden", "message": "needs the dashboard permission"}, status=403)
            raise PermissionDenied("viewing the performance dashboard needs the dashboard permission")
        return view(request, *args, **kwargs)

    return wrapped


@never_cache
@require_GET
@dashboard_access
def ops_dashboard(request: HttpRequest) -> HttpResponse:
    context = {
        **admin.site.each_context(request),
        "title": "Performance dashboard",
        "ranges": list(dashboard.RANGES),
        "hosts": dashboard.known_hosts(),
        "push_s": settings.OPSITE_DASHBOARD_PUSH_S,
        "tiles": dashboard.page_tiles(),
    }
    return render(request, "monitoring/ops.html", context)


@never_cache
@require_GET
@dashboard_access
def ops_series(request: HttpRequest) -> HttpResponse:
    range_key = request.GET.get("range", "24h")
    if range_key not in dashboard.RANGES:
        return ApiError(400, "invalid", f"range must be one of {', '.join(dashboard.RANGES)}").response()
    hosts = [h for h in request.GET.getlist("host") if h]
    body = dashboard.series_json(range_key=range_key, hosts=hosts or None)
    return HttpResponse(body, content_type="application/json")


@never_cache
@require_GET
@dashboard_access
def ops_tables(request: HttpRequest) -> HttpResponse:
    return HttpResponse(dashboard.tables_json(), content_type="application/json")


@never_cache
@require_GET
@dashboard_access
def ops_live(request: HttpRequest) -> JsonResponse:
    return JsonResponse(dashboard.live_figures.get())
