"""Small pieces shared by the JSON APIs: every error a client gets is built here, as an HTTP
response (``ApiError``) or a WebSocket frame (``error_frame``), with the same two fields: a
machine-readable code and a sentence for a person."""

from __future__ import annotations

import ipaddress
import json
import math
import re
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse

from .validation import MAX_JSON_DEPTH, NonFinite, json_value_problems


class ApiError(Exception):
    def __init__(self, status: int, error: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.error, self.message, self.extra = status, error, message, extra

    def response(self) -> JsonResponse:
        response = JsonResponse({"error": self.error, "message": self.message, **self.extra}, status=self.status)
        if "retry_after" in self.extra:
            response["Retry-After"] = str(self.extra["retry_after"])
        return response


def error_frame(code: str, message: str) -> str:
    """A WebSocket error frame; the socket stays open (a close code ends it instead)."""
    return json.dumps({"type": "error", "code": code, "message": message})


def client_address(request: HttpRequest) -> str:
    """The address of whoever sent the request. The peer's address, unless the peer is one of
    OPSITE_TRUSTED_PROXIES: then the nearest address in X-Forwarded-For (walked from the right,
    the end a trusted proxy appended) that is not itself a trusted proxy. A client can put
    anything at the left of that header, so only what trusted proxies added is believed. The
    servers must not rewrite the peer address themselves (uvicorn runs with --no-proxy-headers;
    gunicorn never does)."""
    peer = request.META.get("REMOTE_ADDR", "")
    trusted = settings.OPSITE_TRUSTED_PROXIES
    if not trusted or not _in_networks(peer, trusted):
        return peer
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _in_networks(hop, trusted):
            return hop
    return hops[0] if hops else peer


def _in_networks(address: str, networks: list[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(net, strict=False) for net in networks)


def address_in(request: HttpRequest, networks: list[str]) -> bool:
    return _in_networks(client_address(request), networks)


def bearer_token(request: HttpRequest) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


_SUSPECT = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])|\xed[\xa0-\xbf]")


def read_json_body(request: HttpRequest, *, max_bytes: int) -> Any:
    """The request's JSON body, or an ApiError for 413 / 415 / 400."""
    content_type = request.content_type or ""
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise ApiError(415, "unsupported_media_type", "send Content-Type: application/json")
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, "too_large", f"the body is limited to {max_bytes} bytes")
    body = _chunked_body(request, max_bytes) if declared == "0" else None
    if body is None:
        body = request.read(max_bytes + 1)
    if len(body) > max_bytes:
        raise ApiError(413, "too_large", f"the body is limited to {max_bytes} bytes")
    non_finite: list[str] = []

    def constant(text: str) -> NonFinite:
        non_finite.append(text)
        return NonFinite(text)

    def number(text: str) -> Any:
        value = float(text)  # 1e999 parses to infinity
        return value if math.isfinite(value) else constant(text)

    try:
        payload = json.loads(body, parse_constant=constant, parse_float=number)
    except RecursionError as exc:
        raise ApiError(400, "bad_json", f"the body is nested deeper than {MAX_JSON_DEPTH} levels") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "bad_json", f"the body is not valid JSON: {exc}") from exc
    # Strings are looked at one by one only when the body can hold a NUL or a lone surrogate
    # (as an escape, or as raw bytes the parser lets through) or a non-finite number; otherwise
    # only the nesting is walked: the ingest path pays for what it may contain, not its size.
    # (a zero byte means UTF-16 or UTF-32, where a lone surrogate needs no escape)
    suspect = bool(non_finite) or b"\x00" in body or _SUSPECT.search(body) is not None
    problems = json_value_problems(payload, strings=suspect)
    if problems:
        raise ApiError(400, "invalid", "some values cannot be stored", fields=problems)
    return payload


def _chunked_body(request: HttpRequest, max_bytes: int) -> bytes | None:
    """A body sent with ``Transfer-Encoding: chunked`` has no Content-Length, and Django's WSGI
    request reads such a body as empty. Read it from the server's input when the server ends
    that stream itself (gunicorn does; ``wsgi.input_terminated``), or refuse with 411. Under ASGI
    the server has already collected the body, so the ordinary read serves."""
    if "chunked" not in request.META.get("HTTP_TRANSFER_ENCODING", "").lower() or "wsgi.input" not in request.META:
        return None
    if not request.META.get("wsgi.input_terminated"):
        raise ApiError(411, "length_required", "send a Content-Length: this server cannot read a chunked body")
    return bytes(request.META["wsgi.input"].read(max_bytes + 1))
