"""Per-route request series, counted in the request's own process (multiprocess-safe): answers
by status class, 5xx answers, latency as a histogram with exemplars, queries and their time."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter

from common.series import ExemplarHistogram, exemplar_labels

REQUESTS = Counter("opsite_http_requests", "Requests answered, by route pattern and status class",
                   ["route", "status_class"])  # fmt: skip
ERRORS = Counter("opsite_http_errors", "Requests answered 5xx, by route pattern", ["route"])
LATENCY = ExemplarHistogram("opsite_http_request_latency_seconds", "Request duration in the application",
                            ["route"])  # fmt: skip
QUERIES = Counter("opsite_db_queries", "Database statements run by requests, by route pattern", ["route"])
QUERY_SECONDS = Counter("opsite_db_query_seconds", "Time requests spent in database statements, by route pattern",
                        ["route"])  # fmt: skip

STATUS_CLASSES = ("1xx", "1xx", "2xx", "3xx", "4xx", "5xx")


class _Route:
    """One route's series, resolved once: a request costs one batched update, no label lookups."""

    __slots__ = ("by_class", "errors", "latency", "queries", "query_seconds", "route")

    def __init__(self, route: str) -> None:
        self.route = route
        self.by_class: dict[str, Any] = {}
        self.errors = ERRORS.labels(route)
        self.latency = LATENCY.labels(route)
        self.queries = QUERIES.labels(route)
        self.query_seconds = QUERY_SECONDS.labels(route)

    def answered(self, status: int) -> Any:
        name = STATUS_CLASSES[status // 100] if 100 <= status < 600 else "5xx"
        child = self.by_class.get(name)
        if child is None:
            child = self.by_class[name] = REQUESTS.labels(self.route, name)
        return child


_routes: dict[str, _Route] = {}


def request_observe(
    *, route: str, status: int, seconds: float, queries: int, query_s: float, request_id: str, trace_id: str
) -> None:
    series = _routes.get(route)
    if series is None:
        series = _routes[route] = _Route(route)
    counts = [(series.answered(status), 1.0)]
    if status >= 500:
        counts.append((series.errors, 1.0))
    if queries:
        counts += ((series.queries, float(queries)), (series.query_seconds, query_s))
    series.latency.observe_with(counts, seconds, exemplar_labels(request_id, trace_id))
