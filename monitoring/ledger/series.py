"""Every Celery task run, whoever sent it: a request state of its own while it runs (its id is
the task id; its trace continues the sender's ``traceparent``, so logs and SQL comments carry
it), and the cluster-wide runs and durations by task and outcome."""

from __future__ import annotations

import time
from contextvars import Token
from typing import Any

from celery import current_app

from common.context import RequestState, current_request
from common.series import SharedCounter, SharedHistogram, bounded
from common.tracing import HEADER, TraceContext

TASK_RUNS = SharedCounter("opsite_celery_task_runs", "Celery task runs by task and outcome, all workers",
                          ["task", "outcome"])  # fmt: skip
TASK_SECONDS = SharedHistogram(
    "opsite_celery_task_duration_seconds", "Celery task run time by task, all workers", "task",
    (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, float("inf")),
)  # fmt: skip
OUTCOMES = frozenset({"success", "failure", "retry", "revoked", "ignored", "rejected"})

_running: dict[str, tuple[Token[RequestState | None], float]] = {}


def on_task_prerun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task_id is None or task is None:
        return
    outer = current_request.get()  # an eager task inside a request keeps the request's trace
    # A worker's message puts custom headers on the request itself; an eager apply, in ``headers``.
    header = (getattr(task.request, HEADER, None) or (getattr(task.request, "headers", None) or {}).get(HEADER)
              or (outer.trace.traceparent if outer and outer.trace else None))  # fmt: skip
    state = RequestState(task_id, TraceContext.from_header(header))
    _running[task_id] = (current_request.set(state), time.perf_counter())


def on_task_postrun(task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any) -> None:
    started = _running.pop(task_id or "", None)
    if started is None:
        return
    token, at = started
    try:
        current_request.reset(token)
    except ValueError:  # finished in another context than it started in: nothing to restore
        current_request.set(None)
    name = bounded(getattr(task, "name", ""), frozenset(current_app.tasks.keys()))
    TASK_RUNS.inc(name, bounded((state or "").lower(), OUTCOMES))
    TASK_SECONDS.observe(name, time.perf_counter() - at)
