"""gunicorn reads this file from the working directory: drain on SIGTERM (see
monitoring.lifecycle), and keep the graceful timeout above the drain."""

from typing import Any

graceful_timeout = 30


def post_worker_init(worker: Any) -> None:
    from monitoring.lifecycle import install_drain_handler

    install_drain_handler()
