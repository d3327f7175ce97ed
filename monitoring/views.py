from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from . import health, lifecycle


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
    if lifecycle.shutting_down():
        return JsonResponse({"status": "not_ready", "reason": "shutting down", "checks": {}}, status=503)
    ready, results = health.readiness()
    checks = {name: result.as_dict() for name, result in results.items()}
    if ready:
        return JsonResponse({"status": "ready", "checks": checks})
    return JsonResponse({"status": "not_ready", "checks": checks}, status=503)
