"""When this process started (the uptime in /health), and how it stops.

On SIGTERM a web process first **drains**: /health/ready answers 503 at once, so load
balancers and Kubernetes take it out of rotation, while it keeps serving for
OPSITE_DRAIN_S seconds; then the server's own graceful stop runs (in-flight requests finish,
uvicorn closes sockets with 1012 so boards reconnect elsewhere and resume). A second SIGTERM
stops at once. uvicorn installs the handler from the ASGI lifespan startup, gunicorn from its
post_worker_init hook (gunicorn.conf.py): both after the server's own handler, which is
wrapped, not replaced.
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from django.conf import settings

from monitoring.nodes.reports import reporter

log = logging.getLogger(__name__)

STARTED_AT = time.time()
_draining = threading.Event()


def uptime_seconds() -> float:
    return time.time() - STARTED_AT


def draining() -> bool:
    return _draining.is_set()


def begin_drain(stop: Callable[[], None]) -> None:
    """Answer not-ready from now on; call ``stop`` after the drain period (at once when a
    drain is already under way)."""
    if _draining.is_set():
        stop()
        return
    _draining.set()
    delay = settings.OPSITE_DRAIN_S
    log.warning("SIGTERM: draining for %.1f s (ready answers 503), then stopping", delay)
    if delay <= 0:
        stop()
        return
    timer = threading.Timer(delay, stop)
    timer.daemon = True
    timer.start()


def install_drain_handler() -> None:
    """Wrap the current SIGTERM handler (the server's) so that it runs after the drain."""
    if threading.current_thread() is not threading.main_thread():
        return  # signals belong to the main thread; a server run from a thread manages its own
    original: Any = signal.getsignal(signal.SIGTERM)
    if getattr(original, "opsite_drain", False):
        return

    def on_term(signum: int, frame: FrameType | None) -> None:
        def stop() -> None:
            if callable(original):
                original(signum, frame)
            else:  # SIG_DFL: terminate as the default would
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.raise_signal(signal.SIGTERM)

        begin_drain(stop)

    on_term.opsite_drain = True  # type: ignore[attr-defined]
    signal.signal(signal.SIGTERM, on_term)


def web_process_started() -> None:
    """A web process is up (uvicorn's lifespan startup, gunicorn's post_worker_init): drain on
    SIGTERM, and start its per-process loops now — the node report and the alert watchdog —
    rather than on its first request, so a process that has served nothing yet still reports
    itself and watches the alert evaluation. Everything loaded so far (Django, the URL conf,
    the apps) lives as long as the process: it is moved out of the garbage collector's sight, so
    the full collections that request garbage triggers no longer walk it."""
    install_drain_handler()
    reporter.start("web")
    gc.freeze()
    for hook in STARTED_HOOKS:
        hook()


# What else runs as a web process starts, registered by the apps (cache warming).
STARTED_HOOKS: list[Callable[[], object]] = []


def starting_loops_on_first_use(app: Any) -> Any:
    """An ASGI app that starts the process's loops with its first connection: the fallback for a
    server without the lifespan protocol (daphne, runserver)."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        reporter.start("web")
        await app(scope, receive, send)

    return wrapped


def wsgi_starting_loops_on_first_use(app: Any) -> Any:
    """The same for a WSGI server without gunicorn's post_worker_init hook."""

    def wrapped(environ: Any, start_response: Any) -> Any:
        reporter.start("web")
        return app(environ, start_response)

    return wrapped
