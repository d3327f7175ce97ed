"""Request monitoring: request id and trace context, timing headers, per-route traffic and
Prometheus series, slow requests (logged and kept), N+1.

Sync and async capable, so under ASGI it runs in the event loop with no thread hop; its work
per request is a few dictionary updates in memory (the flush to Redis happens elsewhere).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

from common.context import RequestState, current_request, request_id_from
from common.tracing import TraceContext
from monitoring.requests.profiling import profile_view_if_asked
from monitoring.requests.queries import get_aggregator
from monitoring.requests.series import request_observe
from monitoring.requests.slow import buffer as slow_requests
from monitoring.requests.traffic import get_recorder

log = logging.getLogger("opsite.requests")

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "<unmatched>"


def route_of(request: HttpRequest) -> str:
    """The URL pattern, never the raw path, so the number of routes stays bounded."""
    method = request.method if request.method in KNOWN_METHODS else "OTHER"
    match = getattr(request, "resolver_match", None)
    return f"{method} /{match.route}" if match is not None else f"{method} {UNMATCHED}"


PROBE_PATHS = frozenset({"/health", "/health/live", "/health/ready", "/metrics"})


def _is_ip_literal(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


class ProbeHostMiddleware:
    """Probes and scrapers address a pod or container by its IP (the kubelet sends
    ``Host: <pod IP>:<port>``), which is never among ALLOWED_HOSTS: for the probe paths only,
    and only for a Host that is an IP address, the host is taken as given instead of
    refusing with 400. Every other path and every host name is validated as usual."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if request.path in PROBE_PATHS and _is_ip_literal(request.META.get("HTTP_HOST", "")):
            request.get_host = request._get_raw_host  # type: ignore[method-assign,attr-defined]
        return self.get_response(request)


def _set_headers(response: HttpResponseBase, request_id: str, traceparent: str, timing: str, took: str) -> None:
    """The four headers every answer carries. Their values are made here from digits, hex and
    the request id's own safe alphabet (checked when it came in), so Django's per-header
    encoding and newline checks are skipped: written into its header store directly, which
    halves what the headers cost. Falls back to the public way if that store is not there."""
    store = getattr(getattr(response, "headers", None), "_store", None)
    if not isinstance(store, dict):
        response["X-Request-ID"], response["Server-Timing"], response["X-Response-Time"] = request_id, timing, took
        if traceparent:
            response["traceparent"] = traceparent
        return
    store["x-request-id"] = ("X-Request-ID", request_id)
    store["server-timing"] = ("Server-Timing", timing)
    store["x-response-time"] = ("X-Response-Time", took)
    if traceparent:
        store["traceparent"] = ("traceparent", traceparent)


def _state_for(request: HttpRequest) -> RequestState:
    """The request's id (a well-formed inbound one kept) and its trace: the caller's
    ``traceparent`` continued, or a new trace when it is absent or malformed (never refused)."""
    meta = request.META
    return RequestState(
        request_id_from(meta.get("HTTP_X_REQUEST_ID")), TraceContext.from_header(meta.get("HTTP_TRACEPARENT"))
    )


class RequestMonitoringMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        self.recorder = get_recorder()
        self.slow_ms = settings.OPSITE_SLOW_REQUEST_MS
        self.n_plus_one = settings.OPSITE_N_PLUS_ONE_THRESHOLD

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self.is_async:
            return self._acall(request)
        started = time.perf_counter()
        state = _state_for(request)
        token = current_request.set(state)
        try:
            response = self.get_response(request)
            return self._finish(request, response, state, started)
        finally:
            current_request.reset(token)

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        state = _state_for(request)
        token = current_request.set(state)
        try:
            response = await self.get_response(request)
            return self._finish(request, response, state, started)
        finally:
            current_request.reset(token)

    def process_view(
        self, request: HttpRequest, view: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> HttpResponseBase | None:
        # Django calls this after every middleware's request phase (so request.user is known)
        # and once the route is resolved; it is a no-op unless a profile is asked for or armed.
        return profile_view_if_asked(request, view, args, kwargs)

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        state = current_request.get()
        if state is not None:
            state.exception = type(exception).__name__

    def _finish(
        self, request: HttpRequest, response: HttpResponseBase, state: RequestState, started: float
    ) -> HttpResponseBase:
        ms = (time.perf_counter() - started) * 1000
        route = route_of(request)
        slow = ms >= self.slow_ms
        status = response.status_code
        self.recorder.record(route, ms, status, slow=slow, exception=state.exception)
        request_observe(
            route=route, status=status, seconds=ms / 1000, queries=state.queries, query_s=state.query_ms / 1000,
            request_id=state.request_id, trace_id=state.trace_id,
        )  # fmt: skip
        duration = f"{ms:.2f}"
        timing = f"app;dur={duration}, db;dur={state.query_ms:.2f}" if state.queries else "app;dur=" + duration
        traceparent = state.trace.traceparent if state.trace is not None else ""
        _set_headers(response, state.request_id, traceparent, timing, duration + "ms")
        if slow:
            slow_requests.add(state=state, route=route, method=request.method or "", path=request.path,
                              status=status, ms=ms)  # fmt: skip
            log.warning(
                "slow request %s",
                json.dumps(
                    {
                        "request_id": state.request_id, "trace_id": state.trace_id, "route": route,
                        "method": request.method, "status": status, "ms": round(ms, 2), "queries": state.queries,
                        "query_ms": round(state.query_ms, 2),
                    }
                ),
            )  # fmt: skip
        if state.statements is not None and state.queries >= self.n_plus_one:
            self._check_n_plus_one(route, state.statements, state.request_id)
        return response

    def _check_n_plus_one(self, route: str, statements: dict[str, list[float]], request_id: str) -> None:
        for sql, (times, _) in statements.items():
            if times >= self.n_plus_one:
                fp = get_aggregator().add_n_plus_one(route, sql)
                log.warning(
                    "N+1 suspected: %d runs of fingerprint %s on %s request_id=%s", times, fp, route, request_id
                )
