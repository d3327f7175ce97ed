"""The health gate: a release's error rate and p95 over its settle window, from the difference
between two readings of opsite's own per-process request series on ``/metrics``. Health probes
and scrapes are left out: they are the deploy's own traffic and the balancer's."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from releases.layout import Gate

REQUESTS = "opsite_http_requests"
LATENCY = "opsite_http_request_latency_seconds"
_PROBES = ("/health", "/metrics")


class GateUnreadable(RuntimeError):
    """A metrics address did not answer; one line."""


def _counted(route: str) -> bool:
    path = route.partition(" ")[2]
    return not path.startswith(_PROBES)


@dataclass
class Reading:
    """Requests by status class and cumulative latency buckets (seconds → count), summed over
    the routes the gate counts and over every address read."""

    by_class: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    buckets: dict[float, float] = field(default_factory=lambda: defaultdict(float))

    def add_text(self, text: str) -> None:
        for family in text_string_to_metric_families(text):
            if family.name == REQUESTS:
                for sample in family.samples:
                    if sample.name.endswith("_total") and _counted(sample.labels.get("route", "")):
                        self.by_class[sample.labels.get("status_class", "")] += sample.value
            elif family.name == LATENCY:
                for sample in family.samples:
                    if sample.name.endswith("_bucket") and _counted(sample.labels.get("route", "")):
                        self.buckets[float(sample.labels["le"])] += sample.value


def read(urls: Iterable[str], *, timeout_s: float = 10.0) -> Reading:
    reading = Reading()
    for url in urls:
        try:
            answer = httpx.get(url, timeout=timeout_s)
        except httpx.HTTPError as exc:
            raise GateUnreadable(f"{url}: {type(exc).__name__}: {exc}") from exc
        if answer.status_code != 200:
            raise GateUnreadable(f"{url} answered {answer.status_code}")
        reading.add_text(answer.text)
    return reading


def _delta(before: Mapping[Any, float], after: Mapping[Any, float], key: Any) -> float:
    now, then = after.get(key, 0.0), before.get(key, 0.0)
    return now - then if now >= then else now  # a counter that went down was reset: count from zero


@dataclass(frozen=True)
class Verdict:
    passed: bool
    requests: int
    errors: int
    error_rate: float | None
    p95_ms: float | None
    reason: str

    def figures(self) -> dict[str, float | int | None]:
        return {"requests": self.requests, "errors": self.errors, "error_rate": self.error_rate,
                "p95_ms": self.p95_ms}  # fmt: skip

    def line(self) -> str:
        rate = "-" if self.error_rate is None else f"{self.error_rate:.1%}"
        p95 = "-" if self.p95_ms is None else f"{self.p95_ms:.0f} ms"
        return f"{self.requests} requests, {self.errors} errors ({rate}), p95 {p95}"


def quantile(buckets: dict[float, float], q: float) -> float | None:
    """The q-quantile (seconds) of cumulative buckets, interpolated within a bucket as Prometheus'
    histogram_quantile() does; None without observations."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    total = buckets[bounds[-1]]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return bounds[-1]


def judge(before: Reading, after: Reading, gate: Gate) -> Verdict:
    classes = set(before.by_class) | set(after.by_class)
    by_class = {c: _delta(before.by_class, after.by_class, c) for c in classes}
    requests = round(sum(by_class.values()))
    errors = round(by_class.get("5xx", 0.0))
    buckets = {b: _delta(before.buckets, after.buckets, b) for b in set(before.buckets) | set(after.buckets)}
    p95_s = quantile(buckets, 0.95)
    p95_ms = None if p95_s is None else p95_s * 1000
    rate = errors / requests if requests else None
    if requests < gate.min_requests:
        reason = f"only {requests} requests in the settle window (at least {gate.min_requests} needed)"
        return Verdict(False, requests, errors, rate, p95_ms, reason)
    if rate is not None and rate > gate.max_error_rate:
        reason = f"error rate {rate:.1%} is over {gate.max_error_rate:.1%}"
        return Verdict(False, requests, errors, rate, p95_ms, reason)
    if p95_ms is not None and p95_ms > gate.max_p95_ms:
        reason = f"p95 {p95_ms:.0f} ms is over {gate.max_p95_ms:g} ms"
        return Verdict(False, requests, errors, rate, p95_ms, reason)
    return Verdict(True, requests, errors, rate, p95_ms, "no traffic to judge" if not requests else "")
