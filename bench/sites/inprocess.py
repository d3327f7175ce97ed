"""Per-request cost of opsite's request monitoring measured inside one process: WSGI handlers
built from the same settings, with the monitoring middleware, without it, and with a middleware
that does nothing in its place (what Django charges for one more), called in turn on the same pages (no network, no load generator), many rounds; the minimum of the rounds
is the figure least disturbed by the rest of the machine. Prints one JSON line.

Run by bench/monitoring_overhead.py with DJANGO_SETTINGS_MODULE=sites.opsite_settings."""

from __future__ import annotations

import gc
import io
import json
import statistics
import sys
import time
from typing import Any

import django
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.test.utils import override_settings

MONITORING = "monitoring.requests.middleware.RequestMonitoringMiddleware"


def handler(first: str | None) -> WSGIHandler:
    chain = [m for m in settings.MIDDLEWARE if m != MONITORING]
    with override_settings(MIDDLEWARE=[first, *chain] if first else chain):
        return WSGIHandler()


def call(app: WSGIHandler, path: str) -> None:
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
               "SERVER_PORT": "80", "HTTP_HOST": "127.0.0.1", "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http",
               "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr}  # fmt: skip
    status: list[str] = []
    body: Any = app(environ, lambda s, h, exc=None: status.append(s))
    b"".join(body)
    body.close()
    assert status[0].startswith("200"), status


def per_request_us(app: WSGIHandler, path: str, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        call(app, path)
    return (time.perf_counter() - started) / n * 1e6


def count_only(mode: str, page: str, n: int) -> None:
    """For instruction counting (callgrind): warm up, then ``n`` calls of one handler, nothing else."""
    first = {"on": MONITORING, "off": None, "noop": "sites.noop.NoopMiddleware"}[mode]
    app, path = handler(first), PAGES[page]
    for _ in range(50):
        call(app, path)
    for _ in range(n):
        call(app, path)


PAGES = {"trivial": "/health/live", "20 queries": "/bench/twenty-queries"}


def main() -> None:
    django.setup()
    gc.freeze()  # as a web process does once started (monitoring.lifecycle)
    if sys.argv[1:2] == ["--count"]:
        count_only(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    apps = {"on": handler(MONITORING), "off": handler(None), "noop": handler("sites.noop.NoopMiddleware")}
    found: dict[str, dict[str, dict[str, float]]] = {}
    for page, path, n in (("trivial", "/health/live", 2000), ("20 queries", "/bench/twenty-queries", 100)):
        for app in apps.values():
            for _ in range(n // 5):
                call(app, path)  # warm
        times: dict[str, list[float]] = {mode: [] for mode in apps}
        for _ in range(rounds):
            for mode, app in apps.items():
                times[mode].append(per_request_us(app, path, n))
        found[page] = {mode: {"min": min(t), "median": statistics.median(t)} for mode, t in times.items()}
    print(json.dumps(found))


if __name__ == "__main__":
    main()
