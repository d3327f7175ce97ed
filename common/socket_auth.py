"""The signed-in user of a WebSocket, read from the session cookie while the socket opens.

channels' ``AuthMiddlewareStack`` reads the session and user in a thread hop of its own before
the consumer runs, and wraps the socket's ``send`` so that a changed session is saved when a
response goes out; every frame a socket writes then goes through that wrapper, which looks at
the session each time. A socket here never changes its session. This middleware only parses the
cookie and makes the (not yet loaded) session store; the consumer reads the user with
``socket_user`` inside the same database call as its own access check (one hop per handshake,
not two), as Django's ``get_user`` does for a request (the backend, the session's auth hash, a
flushed session when the hash no longer matches). ``send`` is left alone: a feed frame goes
straight to the server.
"""

from __future__ import annotations

from importlib import import_module
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user
from django.contrib.sessions.backends.base import SessionBase
from django.http.cookie import parse_cookie


def socket_user(scope: dict[str, Any]) -> Any:
    """The socket's user (``AnonymousUser`` without a valid session), read from its session the
    first time and kept in the scope. Synchronous: call it inside a database call."""
    if "user" not in scope:
        session = scope["session"]
        scope["user"] = get_user(SimpleNamespace(session=session))  # type: ignore[arg-type]
        if session.modified and session.session_key:  # a fallback secret verified it: keep the new hash
            session.save()
    return scope["user"]


def _cookie_header(scope: dict[str, Any]) -> str:
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            return str(value.decode("latin-1"))
    return ""


class SessionAuthMiddleware:
    """Sets ``scope["cookies"]`` and ``scope["session"]`` (loaded when first read) for the inner
    application; ``socket_user`` reads the user."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        # found once, as Django's SessionMiddleware does, not on every handshake
        self.session_store: type[SessionBase] = import_module(settings.SESSION_ENGINE).SessionStore

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        cookies = parse_cookie(_cookie_header(scope))
        session = self.session_store(cookies.get(settings.SESSION_COOKIE_NAME))
        return await self.inner(dict(scope, cookies=cookies, session=session), receive, send)
