from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from common.http import ApiError, read_json_body
from monitoring.requests import frontend
from monitoring.requests.services import frontend_error_record
from monitoring.requests.traffic import FRONTEND, get_recorder
from realtime.auth import restaurant_from_request

REPORT_MAX_BYTES = 256 * 1024


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
    # "received" and "status" are the mobile clients' names for the same answer
    return JsonResponse({"accepted": len(reports), "received": len(reports), "status": "accepted"}, status=202)


@csrf_exempt
@require_POST
def frontend_errors(request: HttpRequest) -> JsonResponse:
    try:
        restaurant, reports = _accepted_reports(request, "frontend-errors", frontend.clean_errors)
    except ApiError as exc:
        return exc.response()
    with transaction.atomic():  # all or nothing, like ingest
        groups = [frontend_error_record(report=report, restaurant=restaurant) for report in reports]
    return JsonResponse({"accepted": len(groups), "received": len(groups), "status": "accepted",
                         "groups": [g.fingerprint for g in groups]}, status=202)  # fmt: skip
