"""Prometheus-native series: counters and histograms that ``rate()`` and
``histogram_quantile()`` work on, with what Prometheus's Python client leaves out.

- **Per-process series** are prometheus_client's own (in multiprocess mode when
  ``PROMETHEUS_MULTIPROC_DIR`` is set: every process on a host writes its files and any of
  them answers for all). Aggregate them with ``sum`` over targets.
- **Exemplars across processes**: the client keeps none in multiprocess mode. Each histogram
  here remembers the newest observation per bucket with its request and trace ids; every few
  seconds a process writes its own to ``opsite_<pid>.json`` in the shared directory, and the
  exposition merges them (newest wins) onto the bucket lines of the OpenMetrics answer.
- **Process and Python series in every layout**: multiprocess mode drops them; here they are
  read for every live process of the host (``/proc/<pid>``, and each process's own GC figures
  from its JSON file), labelled ``pid``.
- **Cluster-wide series** for work done outside web processes (Celery tasks, backups): kept in
  the merged store (Redis, or this process without it), so every web process exposes the same
  totals. Aggregate them with ``max``, never ``sum``, over targets.
"""

from __future__ import annotations

import bisect
import gc
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from django.conf import settings
from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar, Sample
from prometheus_client.utils import floatToGoString

from .background import BackgroundLoop
from .redis import get_redis, redis_key

log = logging.getLogger(__name__)

# Latency buckets from 1 ms to 10 s, about 2.5x apart: the range requests and deliveries live in.
SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, float("inf"))
EXEMPLAR_RUNES_MAX = 128  # OpenMetrics: an exemplar's label names and values together
_PROCESS_FILE = re.compile(r"^opsite_(\d+)\.json$")
_PROMETHEUS_FILE = re.compile(r"_(\d+)\.db$")


def bounded(value: str, allowed: frozenset[str], other: str = "other") -> str:
    """A label value from outside the process (a close code, an event type) is one of a known
    set or ``other``: a client can never create a series of its own."""
    return value if value in allowed else other


# prometheus_client chooses its value store once, at import, from the same variable.
SHARED_DIRECTORY = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def multiprocess_dir() -> Path | None:
    found = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(found) if found else None


# What is left for the request id beside the label names and a 32-character trace id.
_REQUEST_ID_ROOM = EXEMPLAR_RUNES_MAX - len("request_id") - len("trace_id") - 32


def exemplar_labels(request_id: str, trace_id: str) -> dict[str, str]:
    """Both ids, the request id shortened so the set stays within the OpenMetrics limit."""
    if request_id and trace_id:
        return {"request_id": request_id[:_REQUEST_ID_ROOM], "trace_id": trace_id}
    if trace_id:
        return {"trace_id": trace_id}
    return {"request_id": request_id[: _REQUEST_ID_ROOM + 32]} if request_id else {}


class ExemplarStore:
    """The newest exemplar per (histogram, label values, bucket) of this process, shared with
    the host's other processes through a file each."""

    def __init__(self) -> None:
        self.mine: dict[tuple[str, tuple[str, ...], int], tuple[dict[str, str], float, float]] = {}
        self.loop = BackgroundLoop("opsite-series-files", self.write, lambda: settings.OPSITE_EXEMPLAR_WRITE_S)
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self.mine = {}

    def put(self, key: tuple[str, tuple[str, ...], int], labels: dict[str, str], value: float) -> None:
        self.mine[key] = (labels, value, time.time())
        if SHARED_DIRECTORY:
            self.loop.ensure_running()

    def own_file(self, directory: Path) -> Path:
        return directory / f"opsite_{os.getpid()}.json"

    def write(self) -> None:
        """This process's exemplars and GC figures, replaced atomically (a reader never sees half)."""
        directory = multiprocess_dir()
        if directory is None:
            return
        body = {
            "gc": gc.get_stats(),
            "exemplars": [[name, list(values), bucket, labels, value, at]
                          for (name, values, bucket), (labels, value, at) in list(self.mine.items())],
        }  # fmt: skip
        target = self.own_file(directory)
        partial = target.with_suffix(".tmp")
        partial.write_text(json.dumps(body))
        partial.replace(target)

    def merged(self) -> dict[tuple[str, tuple[str, ...], int], tuple[dict[str, str], float, float]]:
        """Every live process's newest exemplar per bucket (this process's from memory)."""
        found = dict(self.mine)
        for pid, body in process_files():
            if pid == os.getpid():
                continue
            for name, values, bucket, labels, value, at in body.get("exemplars", []):
                key = (name, tuple(values), bucket)
                if key not in found or found[key][2] < at:
                    found[key] = (labels, value, at)
        return found


exemplars = ExemplarStore()


def process_files() -> Iterator[tuple[int, dict[str, Any]]]:
    """(pid, body) of each live process's file in the shared directory; a dead one's is removed."""
    directory = multiprocess_dir()
    if directory is None:
        return
    for path in directory.glob("opsite_*.json"):
        found = _PROCESS_FILE.match(path.name)
        if found is None:
            continue
        pid = int(found.group(1))
        if not Path(f"/proc/{pid}").exists():
            path.unlink(missing_ok=True)
            continue
        try:
            yield pid, json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # being replaced right now: its next version is read on the next scrape


def forget_process(pid: int) -> None:
    """A server's hook for a worker that exited (gunicorn's ``child_exit``)."""
    directory = multiprocess_dir()
    if directory is not None:
        (directory / f"opsite_{pid}.json").unlink(missing_ok=True)


class PendingIncrements:
    """What the hot paths counted, applied to prometheus_client's values in one go: a request
    or a frame pays a few dictionary updates under one lock instead of a locked (and, in
    multiprocess mode, memory-mapped) write per value. Applied every OPSITE_SERIES_APPLY_S by a
    loop and before every exposition, so a scrape of this process is exact and one of another
    process lags by at most that period."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[Any, float] = {}
        self._buckets: dict[tuple[Any, int], int] = {}
        self._sums: dict[Any, float] = {}
        self.loop = BackgroundLoop("opsite-series-apply", self.apply, lambda: settings.OPSITE_SERIES_APPLY_S)
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._counts, self._buckets, self._sums = {}, {}, {}

    def count(self, child: Any, amount: float = 1.0) -> None:
        with self._lock:
            self._counts[child] = self._counts.get(child, 0.0) + amount
        self.loop.ensure_running()

    def record(self, counts: Iterable[tuple[Any, float]], child: Any, bucket: int, value: float) -> None:
        """Several counters and one observation under one lock (a request's figures)."""
        key = (child, bucket)
        with self._lock:
            found = self._counts
            for counted, amount in counts:
                found[counted] = found.get(counted, 0.0) + amount
            self._buckets[key] = self._buckets.get(key, 0) + 1
            self._sums[child] = self._sums.get(child, 0.0) + value
        self.loop.ensure_running()

    def observe(self, child: Any, bucket: int, value: float) -> None:
        key = (child, bucket)
        with self._lock:
            self._buckets[key] = self._buckets.get(key, 0) + 1
            self._sums[child] = self._sums.get(child, 0.0) + value
        self.loop.ensure_running()

    def apply(self) -> None:
        with self._lock:
            counts, self._counts = self._counts, {}
            buckets, self._buckets = self._buckets, {}
            sums, self._sums = self._sums, {}
        for child, amount in counts.items():
            child.inc(amount)
        # prometheus_client keeps a histogram's buckets per bucket (not cumulative) and its sum
        # as values of their own; observe() increments the same two.
        for (child, bucket), n in buckets.items():
            child._buckets[bucket].inc(n)
        for child, total in sums.items():
            child._sum.inc(total)


pending = PendingIncrements()


class CountedChild:
    """A counter's labelled child whose increments go through the pending batch."""

    __slots__ = ("child",)

    def __init__(self, child: Any) -> None:
        self.child = child

    def inc(self, amount: float = 1.0) -> None:
        pending.count(self.child, amount)


class _ExemplarChild:
    __slots__ = ("bounds", "child", "key_prefix")

    def __init__(self, child: Any, name: str, values: tuple[str, ...], bounds: Sequence[float]) -> None:
        self.child, self.key_prefix, self.bounds = child, (name, values), bounds

    def observe(self, value: float, labels: dict[str, str] | None = None) -> None:
        bucket = bisect.bisect_left(self.bounds, value)
        pending.observe(self.child, bucket, value)
        if labels:
            exemplars.put((*self.key_prefix, bucket), labels, value)

    def observe_with(self, counts: Iterable[tuple[Any, float]], value: float, labels: dict[str, str]) -> None:
        """The observation and some counters' increments (prometheus_client children) at once."""
        bucket = bisect.bisect_left(self.bounds, value)
        pending.record(counts, self.child, bucket, value)
        exemplars.put((*self.key_prefix, bucket), labels, value)


class ExemplarHistogram:
    """A histogram whose buckets carry the newest exemplar, across the host's processes."""

    registered: dict[str, ExemplarHistogram] = {}

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = (),
                 buckets: Sequence[float] = SECONDS_BUCKETS) -> None:  # fmt: skip
        self.name, self.labelnames, self.bounds = name, tuple(labelnames), tuple(buckets)
        self.histogram = Histogram(name, documentation, self.labelnames, buckets=self.bounds)
        self._children: dict[tuple[str, ...], _ExemplarChild] = {}
        self.bucket_of_le = {floatToGoString(b): i for i, b in enumerate(self.bounds)}
        ExemplarHistogram.registered[name] = self

    def labels(self, *values: str) -> _ExemplarChild:
        child = self._children.get(values)
        if child is None:
            inner = self.histogram.labels(*values) if values else self.histogram
            child = self._children[values] = _ExemplarChild(inner, self.name, values, self.bounds)
        return child


class WithExemplars:
    """A registry's series, with the merged exemplars on the bucket lines of our histograms
    (only the OpenMetrics exposition writes them; the text format leaves them out)."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Any]:
        pending.apply()
        found = exemplars.merged()
        for metric in self.registry.collect():
            histogram = ExemplarHistogram.registered.get(metric.name)
            if histogram is not None and found:
                metric.samples = [self._with(histogram, sample, found) for sample in metric.samples]
            yield metric

    @staticmethod
    def _with(histogram: ExemplarHistogram, sample: Sample, found: dict[Any, Any]) -> Sample:
        if not sample.name.endswith("_bucket"):
            return sample
        bucket = histogram.bucket_of_le.get(sample.labels.get("le", ""))
        values = tuple(sample.labels.get(name, "") for name in histogram.labelnames)
        hit = found.get((histogram.name, values, bucket))
        if hit is None:
            return sample
        labels, value, at = hit
        return sample._replace(exemplar=Exemplar(labels, value, at))


class HostProcessCollector(Collector):
    """Process and Python series of every live process on this host, labelled ``pid``, for the
    multiprocess layout (where prometheus_client gives only its own merged counters)."""

    def __init__(self) -> None:
        self._platform = PlatformCollector(registry=None)

    def describe(self) -> Iterator[Any]:
        return iter(())

    def collect(self) -> Iterator[Any]:
        yield from self._platform.collect()
        families: dict[str, Any] = {}
        for pid in sorted(host_pids()):
            collector = ProcessCollector(pid=lambda pid=pid: pid, registry=None)  # type: ignore[misc]
            for metric in collector.collect():
                family = families.setdefault(metric.name, Metric(metric.name, metric.documentation, metric.type))
                family.samples.extend(s._replace(labels={**s.labels, "pid": str(pid)}) for s in metric.samples)
        yield from families.values()
        yield from _gc_families()


def host_pids() -> set[int]:
    """Live processes that wrote series into the shared directory (this one included)."""
    directory = multiprocess_dir()
    pids = {os.getpid()}
    if directory is None:
        return pids
    for path in directory.iterdir():
        found = _PROMETHEUS_FILE.search(path.name) or _PROCESS_FILE.match(path.name)
        if found is not None:
            pids.add(int(found.group(1)))
    return {pid for pid in pids if Path(f"/proc/{pid}").exists()}


def _gc_families() -> Iterator[Any]:
    bodies = {pid: body.get("gc", []) for pid, body in process_files()}
    bodies[os.getpid()] = gc.get_stats()
    for name, key, text in (
        ("python_gc_objects_collected", "collected", "Objects collected during gc"),
        ("python_gc_objects_uncollectable", "uncollectable", "Uncollectable objects found during GC"),
        ("python_gc_collections", "collections", "Number of times this generation was collected"),
    ):
        family = CounterMetricFamily(name, text, labels=["generation", "pid"])
        for pid, stats in sorted(bodies.items()):
            for generation, figures in enumerate(stats):
                family.add_metric([str(generation), str(pid)], float(figures.get(key, 0)))
        yield family


# ---- cluster-wide series, in the merged store ------------------------------------------------


class SharedTallies:
    """Counters and histograms for work done outside the web processes (Celery tasks, backups):
    each process adds to its buffer, a loop adds the buffer to one Redis hash (or keeps it here
    without Redis), and any web process exposes the totals."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, float] = {}
        self._local: dict[str, float] = {}
        self.loop = BackgroundLoop("opsite-shared-series", self.flush, lambda: settings.OPSITE_METRICS_FLUSH_S)

    def add(self, field: str, amount: float = 1.0) -> None:
        with self._lock:
            self._pending[field] = self._pending.get(field, 0.0) + amount
        self.loop.ensure_running()

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return
        client = get_redis()
        if client is None:
            with self._lock:
                for name, amount in pending.items():
                    self._local[name] = self._local.get(name, 0.0) + amount
            return
        pipe = client.pipeline(transaction=False)
        for name, amount in pending.items():
            pipe.hincrbyfloat(redis_key("series"), name, amount)
        try:
            pipe.execute()
        except Exception as exc:  # kept for the next flush: a counter never loses what it counted
            log.warning("could not flush shared series: %s", exc)
            with self._lock:
                for name, amount in pending.items():
                    self._pending[name] = self._pending.get(name, 0.0) + amount

    def read(self) -> dict[str, float]:
        client = get_redis()
        if client is None:
            with self._lock:
                return dict(self._local)
        return {str(k): float(v) for k, v in client.hgetall(redis_key("series")).items()}


shared = SharedTallies()
SHARED: list[SharedCounter | SharedHistogram] = []  # every cluster-wide series, in the order defined


class SharedHistogram:
    """A cluster-wide histogram over one label, kept in the shared tallies."""

    def __init__(self, name: str, documentation: str, label: str, buckets: Sequence[float]) -> None:
        self.name, self.documentation, self.label, self.bounds = name, documentation, label, tuple(buckets)
        SHARED.append(self)

    def observe(self, value: str, amount: float) -> None:
        bucket = bisect.bisect_left(self.bounds, amount)
        shared.add(f"{self.name}|{value}|b{bucket}")
        shared.add(f"{self.name}|{value}|sum", amount)

    def family(self, totals: dict[str, float]) -> HistogramMetricFamily:
        family = HistogramMetricFamily(self.name, self.documentation, labels=[self.label])
        values = {key.split("|")[1] for key in totals if key.startswith(self.name + "|")}
        for value in sorted(values):
            running, buckets = 0.0, []
            for i, bound in enumerate(self.bounds):
                running += totals.get(f"{self.name}|{value}|b{i}", 0.0)
                buckets.append((floatToGoString(bound), running))
            family.add_metric([value], buckets, totals.get(f"{self.name}|{value}|sum", 0.0))
        return family


class SharedCounter:
    def __init__(self, name: str, documentation: str, labels: Sequence[str]) -> None:
        self.name, self.documentation, self.labels = name, documentation, tuple(labels)
        SHARED.append(self)

    def inc(self, *values: str, amount: float = 1.0) -> None:
        shared.add("|".join((self.name, *values)), amount)

    def family(self, totals: dict[str, float]) -> CounterMetricFamily:
        family = CounterMetricFamily(self.name, self.documentation, labels=list(self.labels))
        for key, amount in sorted(totals.items()):
            parts = key.split("|")
            if parts[0] == self.name and len(parts) == len(self.labels) + 1:
                family.add_metric(parts[1:], amount)
        return family


def shared_families(series: Iterable[SharedCounter | SharedHistogram] = SHARED,
                    read: Callable[[], dict[str, float]] = shared.read) -> list[Any]:  # fmt: skip
    totals = read()
    return [one.family(totals) for one in series]
