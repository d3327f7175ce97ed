"""The WebSocket origin check: a socket is opened only from a page of this site.

channels' ``AllowedHostsOriginValidator`` compares the Origin's host name with ALLOWED_HOSTS
and ignores its scheme and port, so a page on any port of an allowed host (or on plain HTTP in
front of an HTTPS site) could open staff sockets with the staff's cookie. Here the Host the
socket is opened on must be one of ALLOWED_HOSTS, and the Origin must be that same origin
(scheme, host and port; https only where the site forces HTTPS) or one of
CSRF_TRUSTED_ORIGINS, exactly — the same rule Django applies to a form's POST.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import validate_host

DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_parts(origin: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(origin)
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or port is None:
        return None
    return parts.scheme, parts.hostname.lower(), port


def origin_allowed(origin: str, host: str) -> bool:
    try:
        requested = urlsplit(f"//{host}")
        requested_name, requested_port = (requested.hostname or "").lower(), requested.port
    except ValueError:
        return False
    if not requested_name or not validate_host(requested_name, settings.ALLOWED_HOSTS):
        return False
    trusted = {o.rstrip("/").lower() for o in settings.CSRF_TRUSTED_ORIGINS}
    if origin.rstrip("/").lower() in trusted:
        return True
    parts = _origin_parts(origin)
    if parts is None:
        return False
    scheme, name, port = parts
    if settings.SECURE_SSL_REDIRECT and scheme != "https":
        return False
    return requested_name == name and (requested_port or DEFAULT_PORTS[scheme]) == port


class SameOriginValidator:
    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket":
            headers = {name.lower(): value.decode("latin1") for name, value in scope.get("headers", [])}
            if not origin_allowed(headers.get(b"origin", ""), headers.get(b"host", "")):
                return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
