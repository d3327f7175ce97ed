from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from common.http import ApiError
from monitoring.auth import can_view_dashboard, ops_access
from monitoring.dashboard import figures
from monitoring.dashboard.selectors import orders_today
from monitoring.history.service_levels import service_levels
from monitoring.requests.selectors import traffic_summary
from monitoring.requests.slow import slow_requests_between
from realtime.selectors import boards_of, presence_summary


def dashboard_access(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Anonymous: the login page (or 401 for the JSON endpoints); without the permission: 403."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            if request.path.startswith("/ops/api/"):
                return ApiError(401, "unauthorized", "log in first").response()
            return redirect_to_login(request.get_full_path())
        if not can_view_dashboard(request.user):
            if request.path.startswith("/ops/api/"):
                return ApiError(403, "forbidden", "needs the dashboard permission").response()
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
        "ranges": list(figures.RANGES),
        "hosts": figures.known_hosts(),
        "push_s": settings.OPSITE_DASHBOARD_PUSH_S,
        "tiles": figures.page_tiles(),
        "slo_days": settings.OPSITE_SLO_WINDOW_DAYS,
        "slo_within_s": f"{settings.OPSITE_SLO_DELIVERY_WITHIN_S:g}",
        "statement_sorts": [("total", "total time"), ("mean", "mean time"), ("count", "count")],
    }
    return render(request, "monitoring/ops.html", context)


@never_cache
@require_GET
@dashboard_access
def ops_restaurant(request: HttpRequest, slug: str) -> HttpResponse:
    """One restaurant's service levels and its boards connected now."""
    found = boards_of(slug)
    if found is None:
        return render(request, "monitoring/restaurant.html", {**admin.site.each_context(request), "missing": slug,
                      "title": "No such restaurant"}, status=404)  # fmt: skip
    context = {
        **admin.site.each_context(request), **found, "missing": "", "title": f"{found['name']}: service levels",
        "levels": service_levels(timezone.now()).get(slug), "slo_days": settings.OPSITE_SLO_WINDOW_DAYS,
        "slo_within_s": f"{settings.OPSITE_SLO_DELIVERY_WITHIN_S:g}",
    }  # fmt: skip
    return render(request, "monitoring/restaurant.html", context)


@never_cache
@require_GET
@dashboard_access
def ops_series(request: HttpRequest) -> HttpResponse:
    range_key = request.GET.get("range", "24h")
    if range_key not in figures.RANGES:
        return ApiError(400, "invalid", f"range must be one of {', '.join(figures.RANGES)}").response()
    hosts = [h for h in request.GET.getlist("host") if h]
    body = figures.series_json(range_key=range_key, hosts=hosts or None)
    return HttpResponse(body, content_type="application/json")


@never_cache
@require_GET
@dashboard_access
def ops_tables(request: HttpRequest) -> HttpResponse:
    return HttpResponse(figures.tables_json(), content_type="application/json")


@never_cache
@require_GET
@dashboard_access
def ops_live(request: HttpRequest) -> JsonResponse:
    return JsonResponse(figures.live_figures.get())


def _time_window(start: str, minutes: str) -> tuple[datetime, datetime]:
    """[start, start + minutes); without a start, the last ``minutes``."""
    if not minutes.isdigit() or not 1 <= int(minutes) <= 1440:
        raise ValueError("minutes must be a whole number from 1 to 1440")
    span = timedelta(minutes=int(minutes))
    if not start:
        return timezone.now() - span, timezone.now()
    try:
        begin = parse_datetime(start)
    except ValueError:
        begin = None
    if begin is None:
        raise ValueError("start must be an ISO 8601 date and time, e.g. 2026-12-01T10:15:00Z")
    if timezone.is_naive(begin):
        begin = timezone.make_aware(begin, UTC)
    return begin, begin + span


@never_cache
@require_GET
@dashboard_access
def ops_slow_requests(request: HttpRequest) -> HttpResponse:
    """The slowest kept requests from ``start`` (ISO 8601) over ``minutes`` (1 to 1440; without a
    start, the last hour): what a point on the latency chart leads to."""
    start_at = request.GET.get("start", "")
    minutes = request.GET.get("minutes") or ("1" if start_at else "60")
    try:
        start, end = _time_window(start_at, minutes)
    except ValueError as exc:
        return ApiError(400, "invalid", str(exc)).response()
    rows = slow_requests_between(start=start, end=end, route=request.GET.get("route", "")[:300])
    for row in rows:
        row["admin_url"] = reverse("admin:monitoring_slowrequest_change", args=[row["id"]])
    return JsonResponse({"start": start.isoformat(), "end": end.isoformat(), "requests": rows})


@never_cache
@require_GET
@ops_access()
def health_stats(request: HttpRequest) -> JsonResponse:
    """Traffic, today's orders and open sockets in one read (for scripts and load balancers)."""
    return JsonResponse(
        {
            "timestamp": timezone.now().isoformat(),
            "requests": traffic_summary(per_route=request.GET.get("routes") != "0"),
            "orders_today": orders_today(),
            "sockets": presence_summary(),
        }
    )
