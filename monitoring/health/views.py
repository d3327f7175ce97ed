from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from monitoring import lifecycle
from monitoring.auth import ops_access
from monitoring.health import dependencies, probes


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
    ready, results = probes.readiness()
    checks = {name: result.as_dict() for name, result in results.items()}
    if ready:
        return JsonResponse({"status": "ready", "checks": checks})
    return JsonResponse({"status": "not_ready", "checks": checks}, status=503)


@never_cache
@require_GET
@ops_access()
def health_detailed(request: HttpRequest) -> JsonResponse:
    status, report = probes.detailed_report()
    return JsonResponse(report, status=503 if status == probes.UNHEALTHY else 200)


@never_cache
@require_GET
@ops_access()
def health_dependencies(request: HttpRequest) -> JsonResponse:
    results = dependencies.check_all()
    storage = dependencies.check_backup_storage()
    if storage is not None:
        results.append(storage)
    status = "ok" if all(r["status"] == "ok" for r in results) else "degraded"
    return JsonResponse({"status": status, "dependencies": results, "circuits": dependencies.all_circuits()})
