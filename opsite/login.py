"""Login attempts are rate-limited per client address and per username, across processes, so
a password cannot be guessed at the speed of the server (the site login and the admin's)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

from .http import ApiError
from .ratelimit import hit


def login_rate_limited(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method == "POST":
            username = str(request.POST.get("username", ""))[:150].strip().lower()
            checks = [("login-address", request.META.get("REMOTE_ADDR", "?"), settings.OPSITE_LOGIN_RATE_PER_MINUTE)]
            if username:
                checks.append(("login-user", username, settings.OPSITE_LOGIN_USER_RATE_PER_MINUTE))
            for scope, ident, limit in checks:
                allowed, retry_after = hit(scope=scope, ident=ident, limit=limit)
                if not allowed:
                    message = f"Too many login attempts; try again in {retry_after} seconds."
                    return ApiError(429, "rate_limited", message, retry_after=retry_after).response()
        return view(request, *args, **kwargs)

    return wrapped
