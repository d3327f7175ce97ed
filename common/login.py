"""Login attempts are rate-limited across processes, so a password cannot be guessed at the
speed of the server (the site login and the admin's): per client address; per client address
and username, so a stranger elsewhere cannot lock the owner out; and per username from every
address together, at a higher bound, against guessing spread over many addresses. Usernames are
keyed as Django's login form reads them (NFKC) and case-folded, so look-alike spellings of one
name share its count."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

from .http import ApiError, client_address
from .ratelimit import hit


def login_key(username: str) -> str:
    return unicodedata.normalize("NFKC", username).strip().casefold()[:150]


def login_rate_limited(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method == "POST":
            username = login_key(str(request.POST.get("username", "")))
            address = client_address(request) or "?"
            checks = [("login-address", address, settings.OPSITE_LOGIN_RATE_PER_MINUTE)]
            if username:
                checks += [
                    ("login-address-user", f"{address}|{username}", settings.OPSITE_LOGIN_USER_RATE_PER_MINUTE),
                    ("login-user", username, settings.OPSITE_LOGIN_USER_GLOBAL_RATE_PER_MINUTE),
                ]
            for scope, ident, limit in checks:
                allowed, retry_after = hit(scope=scope, ident=ident, limit=limit)
                if not allowed:
                    message = f"Too many login attempts; try again in {retry_after} seconds."
                    return ApiError(429, "rate_limited", message, retry_after=retry_after).response()
        return view(request, *args, **kwargs)

    return wrapped
