"""The signed-in user of a WebSocket, read once from the session cookie at the handshake.

channels' ``AuthMiddlewareStack`` does the same, and also wraps the socket's ``send`` so that a
changed session is saved when a response goes out; every frame a socket writes then goes through
that wrapper, which looks at the session each time. A socket here never changes its session, so
this middleware resolves the session and user in one thread hop (as Django's own ``get_user``
does for a request: the backend, the session's auth hash, a flushed session when the hash no
longer matches) and leaves ``send`` alone: a feed frame goes straight to the server.
"""

from __future__ import annotations

from importlib import import_module
from types import SimpleNamespace
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user
from django.contrib.sessions.backends.base import SessionBase
from django.http.cookie import parse_cookie


def session_store(session_key: str | None) -> SessionBase:
    engine = import_module(settings.SESSION_ENGINE)
    return engine.SessionStore(session_key)


@database_sync_to_async
def _resolve(session_key: str | None) -> tuple[SessionBase, Any]:
    session = session_store(session_key)
    user = get_user(SimpleNamespace(session=session))  # type: ignore[arg-type]
    if session.modified and session.session_key:  # a fallback secret verified it: keep the new hash
        session.save()
    return session, user


def _cookie_header(scope: dict[str, Any]) -> str:
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            return str(value.decode("latin-1"))
    return ""


class SessionAuthMiddleware:
    """Sets ``scope["cookies"]``, ``scope["session"]`` and ``scope["user"]`` (``AnonymousUser``
    without a valid session) for the inner application."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        cookies = parse_cookie(_cookie_header(scope))
        session, user = await _resolve(cookies.get(settings.SESSION_COOKIE_NAME))
        return await self.inner(dict(scope, cookies=cookies, session=session, user=user), receive, send)
