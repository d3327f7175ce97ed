"""Who may read the protected monitoring endpoints: staff sessions or machine bearer tokens."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from common.http import ApiError, address_in, bearer_token


def has_ops_token(request: HttpRequest) -> bool:
    token = bearer_token(request)
    if not token:
        return False
    # Compare against every configured token, so the time taken says nothing about which matched.
    matches = [hmac.compare_digest(token.encode(), known.encode()) for known in settings.OPS_API_TOKENS]
    return any(matches)


def address_allowed(request: HttpRequest) -> bool:
    return address_in(request, settings.OPSITE_METRICS_ALLOWED_NETWORKS)


def ops_access(*, allow_networks: bool = False) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Staff session or ops token (or, for /metrics, an allow-listed address); else 401/403 JSON."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            user = getattr(request, "user", None)
            if has_ops_token(request) or (allow_networks and address_allowed(request)):
                return view(request, *args, **kwargs)
            if user is not None and user.is_authenticated:
                if user.is_active and user.is_staff:
                    return view(request, *args, **kwargs)
                return ApiError(403, "forbidden", "staff only").response()
            response = ApiError(
                401, "unauthorized", "log in as staff or send Authorization: Bearer <ops token>"
            ).response()
            response["WWW-Authenticate"] = 'Bearer realm="opsite"'
            return response

        return wrapped

    return decorator


DASHBOARD_PERMISSION = "monitoring.view_dashboard"


def can_view_dashboard(user: Any) -> bool:
    """Active staff holding the dashboard permission (superusers hold every permission)."""
    return bool(user.is_active and user.is_staff and user.has_perm(DASHBOARD_PERMISSION))
