"""Prometheus exposition.

- Per-process series (multiprocess-safe; sum them over targets): django-prometheus's cache and
  database series, opsite's request, query, socket, ingest and delivery counters and histograms
  (``common.series``), and the process and Python series of every process on the host.
- Cluster-wide series (the same on every target; take ``max``): the gauges below, read from the
  merged stores, and the shared counters and histograms of Celery tasks and backups.

``Accept: application/openmetrics-text`` answers OpenMetrics, whose histogram buckets carry
exemplars (request and trace ids) from any process of the host."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector

from backups.selectors import FINISHED_STATUSES, last_finished, newest_verified_age_s
from common.replicas import monitor, replica_aliases
from common.resilience import STATE_CODES
from common.series import HostProcessCollector, WithExemplars, shared_families
from monitoring import lifecycle
from monitoring.alerts.models import Alert
from monitoring.auth import ops_access
from monitoring.dashboard.figures import cache_stats
from monitoring.dashboard.selectors import orders_today
from monitoring.health import dependencies
from monitoring.health.celery_state import queue_depth
from monitoring.health.selectors import EVALUATOR, beat_heartbeat_age_s, heartbeat_age_s
from monitoring.ledger.models import TaskRun
from monitoring.requests.selectors import WINDOWS
from monitoring.requests.traffic import window
from realtime.selectors import presence_summary


class OpsiteCollector(Collector):
    """Reads the merged figures at most every few seconds, so scrapes stay cheap.

    ``describe()`` answers with no names, so registering the collector computes nothing: a
    registry calls ``collect()`` under its own lock when a collector cannot describe itself,
    and the first figures touch the cache and database, whose instrumentation registers its
    own series on that same lock (a deadlock of the whole process on its first scrape). One
    scrape at a time refreshes; a concurrent one is served the previous figures.
    """

    def __init__(self) -> None:
        self._refresh = threading.Lock()
        self._cached: tuple[float, list[Metric]] | None = None

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        cached = self._cached
        if cached is not None and time.monotonic() - cached[0] < settings.OPSITE_METRICS_CACHE_S:
            yield from cached[1]
            return
        # Without figures yet, wait for the scrape that builds them; with old ones, serve them.
        got = self._refresh.acquire(timeout=30) if cached is None else self._refresh.acquire(blocking=False)
        if not got:
            yield from (cached[1] if cached is not None else [])
            return
        try:
            cached = self._cached
            if cached is None or time.monotonic() - cached[0] >= settings.OPSITE_METRICS_CACHE_S:
                cached = (time.monotonic(), list(self._build()))
                self._cached = cached
        finally:
            self._refresh.release()
        yield from cached[1]

    def _build(self) -> Iterator[Metric]:
        yield from _traffic()
        yield from _orders()
        yield from _sockets()
        yield from _celery()
        yield from _backups()
        yield from _replicas()
        yield from _alerts_and_caches()
        yield from _circuits()
        yield from shared_families()
        yield GaugeMetricFamily("opsite_uptime_seconds", "Seconds since the answering process started",
                                value=lifecycle.uptime_seconds())  # fmt: skip


def _traffic() -> Iterator[Metric]:
    rate = GaugeMetricFamily(
        "opsite_http_request_rate", "Requests per second over the window, all processes", labels=["route", "window"]
    )
    errors = GaugeMetricFamily(
        "opsite_http_error_ratio", "Share of 5xx answers over the window", labels=["route", "window"]
    )
    latency = GaugeMetricFamily(
        "opsite_http_request_duration_seconds",
        "Latency percentiles over the window (within 1 %), all processes",
        labels=["route", "window", "percentile"],
    )
    for label, minutes in WINDOWS.items():
        for route, stats in window(minutes).items():
            rate.add_metric([route, label], stats.rate_per_s)
            errors.add_metric([route, label], stats.error_rate)
            for q, value in (("50", stats.p50_ms), ("95", stats.p95_ms), ("99", stats.p99_ms)):
                if value is not None:
                    latency.add_metric([route, label, q], value / 1000)
    yield from (rate, errors, latency)


def _orders() -> Iterator[Metric]:
    today = orders_today()
    orders = GaugeMetricFamily("opsite_orders_today", "Orders opened since midnight UTC", labels=["restaurant"])
    revenue = GaugeMetricFamily(
        "opsite_revenue_today", "Paid order totals since midnight UTC", labels=["restaurant", "payment_method"]
    )
    for slug, totals in today["by_restaurant"].items():
        orders.add_metric([slug], totals["orders"])
        for method, amount in totals["revenue_by_payment_method"].items():
            revenue.add_metric([slug, method], float(amount))
    yield from (orders, revenue)


def _sockets() -> Iterator[Metric]:
    summary = presence_summary()
    by_restaurant = GaugeMetricFamily("opsite_sockets", "Open staff sockets", labels=["restaurant"])
    for slug, n in summary["by_restaurant"].items():
        by_restaurant.add_metric([slug], n)
    nodes = GaugeMetricFamily("opsite_socket_nodes", "Web processes holding sockets")
    nodes.add_metric([], len(summary["by_node"]))
    yield from (by_restaurant, nodes)


def _celery() -> Iterator[Metric]:
    depth = queue_depth()
    if depth is not None:
        yield GaugeMetricFamily("opsite_celery_queue_depth", "Messages waiting in the Celery queue", value=depth)
    age = beat_heartbeat_age_s()
    if age is not None:
        yield GaugeMetricFamily(
            "opsite_beat_heartbeat_age_seconds", "Seconds since beat's last heartbeat job ran", value=age
        )
    evaluated = heartbeat_age_s(EVALUATOR)
    if evaluated is not None:
        yield GaugeMetricFamily(
            "opsite_alert_evaluator_age_seconds", "Seconds since the scheduled alert evaluation ran", value=evaluated
        )


def _alerts_and_caches() -> Iterator[Metric]:
    from django.db.models import Count

    states = GaugeMetricFamily("opsite_alerts", "Alerts per state and severity", labels=["state", "severity"])
    rows = Alert.objects.filter(rule__enabled=True).values_list("state", "rule__severity").annotate(n=Count("id"))
    for state, severity, n in rows.order_by():
        states.add_metric([state, severity], n)
    runs = GaugeMetricFamily("opsite_task_runs_last_hour", "Scheduled runs in the last hour per status",
                             labels=["status"])  # fmt: skip
    since = timezone.now() - timedelta(hours=1)
    for status, n in (
        TaskRun.objects.filter(scheduled_for__gte=since).values_list("status").annotate(n=Count("id")).order_by()
    ):
        runs.add_metric([status], n)
    ratio = GaugeMetricFamily("opsite_cache_hit_ratio", "Cache hits over lookups since counting began",
                              labels=["namespace"])  # fmt: skip
    for namespace, counts in cache_stats().items():
        if counts["ratio"] is not None:
            ratio.add_metric([namespace], float(counts["ratio"]))
    yield from (states, runs, ratio)


def _circuits() -> Iterator[Metric]:
    state = GaugeMetricFamily("opsite_circuit_state", "Circuit breakers: 0 closed, 1 half-open (trial), 2 open",
                              labels=["circuit"])  # fmt: skip
    failures = GaugeMetricFamily("opsite_circuit_failures", "Failed calls in a row per circuit", labels=["circuit"])
    for row in dependencies.all_circuits():
        state.add_metric([row["name"]], STATE_CODES[row["state"]])
        failures.add_metric([row["name"]], row["failures"])
    yield from (state, failures)


def _backups() -> Iterator[Metric]:
    age = newest_verified_age_s()
    if age is not None:
        yield GaugeMetricFamily("opsite_backup_verified_age_seconds", "Age of the newest verified backup", value=age)
    last = last_finished()
    status = GaugeMetricFamily(
        "opsite_backup_last_status", "1 for the status of the newest finished backup", labels=["status"]
    )
    for choice in FINISHED_STATUSES:
        status.add_metric([choice], 1.0 if last is not None and last.status == choice else 0.0)
    yield status
    if last is not None and last.size_bytes is not None:
        yield GaugeMetricFamily(
            "opsite_backup_last_size_bytes", "Size of the newest finished backup", value=last.size_bytes
        )


def _replicas() -> Iterator[Metric]:
    aliases = replica_aliases()
    if not aliases:
        return
    lag = GaugeMetricFamily("opsite_replica_lag_seconds", "Replication lag of each read replica", labels=["replica"])
    usable = GaugeMetricFamily("opsite_replica_usable", "1 when reads may go to the replica", labels=["replica"])
    for alias in aliases:
        state = monitor.state(alias)
        if state.lag_s is not None:
            lag.add_metric([alias], state.lag_s)
        usable.add_metric([alias], 1.0 if state.ok else 0.0)
    yield from (lag, usable)


_collector = OpsiteCollector()
_registry: CollectorRegistry | None = None
_install_lock = threading.Lock()


def install() -> CollectorRegistry:
    """The registry /metrics reads, built once at start-up (the app's ready()), never by a
    request. With PROMETHEUS_MULTIPROC_DIR the process series come from every process's files;
    otherwise from this process's default registry."""
    global _registry
    with _install_lock:
        if _registry is None:
            # django-prometheus's cache and database series register themselves when their
            # module is first imported: import them now rather than inside a scrape.
            import django_prometheus.cache.metrics
            import django_prometheus.db.metrics  # noqa: F401

            if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
                registry = CollectorRegistry()
                MultiProcessCollector(registry)
                registry.register(HostProcessCollector())
            else:
                registry = REGISTRY
            registry.register(_collector)
            _registry = registry
        return _registry


def exposition(accept: str = "") -> tuple[bytes, str]:
    """The body and its content type: OpenMetrics (with exemplars) when the client accepts it,
    else the Prometheus text format."""
    registry: Any = _registry or install()
    encoder, content_type = choose_encoder(accept)
    return bytes(encoder(WithExemplars(registry))), content_type


@never_cache
@require_GET
@ops_access(allow_networks=True)
def metrics(request: HttpRequest) -> HttpResponse:
    body, content_type = exposition(request.META.get("HTTP_ACCEPT", ""))
    return HttpResponse(body, content_type=content_type)
