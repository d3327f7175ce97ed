"""Profiles a request when a permitted staff member asks, or when its route is armed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponseBase, JsonResponse

from .context import current_request
from .models import Profile
from .profiling import PROFILERS, claim, may_profile, profile_save, requested_profiler, run_profiled, watcher


class ProfilingMiddleware:
    """Placed after authentication. ``process_view`` knows the route; when nothing is asked or
    armed it returns at once and the view runs as always."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> HttpResponseBase | None:
        watcher.ensure_running()
        asked = requested_profiler(request.META)
        route = f"{request.method} /{request.resolver_match.route}" if request.resolver_match else ""
        if asked is None and route not in watcher.current.routes:
            return None
        if asked is not None:
            if asked not in PROFILERS:
                return JsonResponse(
                    {"error": "invalid", "message": f"profiler must be one of {sorted(PROFILERS)}"}, status=400
                )
            if not may_profile(request.user):
                return JsonResponse(
                    {"error": "forbidden", "message": "profiling needs the profile_requests permission"}, status=403
                )
            profiler = asked
        else:
            claimed = claim("route", route)
            if claimed is None:
                return None
            profiler = claimed
        response, fields, ms = run_profiled(profiler, lambda: view(request, *args, **kwargs))
        state = current_request.get()
        profile = profile_save(
            kind=Profile.Kind.REQUEST, name=route, profiler=profiler, request_id=state.request_id if state else "",
            method=request.method or "", path=request.path[:500], status_code=response.status_code, duration_ms=ms,
            queries=state.queries if state else 0, query_ms=state.query_ms if state else 0.0,
            user=request.user if request.user.is_authenticated else None, **fields,
        )  # fmt: skip
        response["X-Opsite-Profile-Id"] = str(profile.pk)
        return response
