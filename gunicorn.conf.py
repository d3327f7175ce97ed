"""gunicorn reads this file from the working directory: threaded workers, keep-alive longer
than a load balancer's idle timeout, the drain on SIGTERM (see monitoring.lifecycle), and a
graceful timeout above the drain. Command-line flags and GUNICORN_CMD_ARGS override these."""

import os
from pathlib import Path
from typing import Any

# Threads, so a slow request (a detailed health report waiting on the workers' ping, a
# profile) does not hold up the requests queued behind it in the same process.
worker_class = "gthread"
threads = 4
# Longer than the balancer's (or a client's) idle timeout: otherwise the server closes an idle
# connection just as the next request is sent on it, and the client sees a reset.
keepalive = 75
graceful_timeout = 30


def post_worker_init(worker: Any) -> None:
    from monitoring.lifecycle import web_process_started

    web_process_started()


def on_starting(server: Any) -> None:
    """Per-process metric files of an earlier run would be summed into this one's: start empty."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory and Path(directory).is_dir():
        for pattern in ("*.db", "opsite_*.json"):
            for stale in Path(directory).glob(pattern):
                stale.unlink(missing_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        from common.series import forget_process

        multiprocess.mark_process_dead(worker.pid)
        forget_process(worker.pid)
