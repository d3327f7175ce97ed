"""What the Celery side looks like from a web process: queue depth and workers answering."""

from __future__ import annotations

from amqp.exceptions import NotFound as AmqpNotFound
from celery import current_app as app  # the project's Celery app (opsite/celery.py), set as current
from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone
from kombu.exceptions import ChannelError as KombuChannelError

from monitoring.nodes.models import NodeReport


def queue_depth(queue: str = "celery") -> int | None:
    """Messages waiting in the queue (Redis, RabbitMQ and the filesystem queue all answer)."""
    try:
        with app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1)
            try:
                ok = conn.default_channel.queue_declare(queue=queue, passive=True)  # type: ignore[attr-defined]
            except (KombuChannelError, AmqpNotFound):
                return 0  # no queue yet (Redis drops an empty list): nothing is waiting
            return int(ok.message_count)
    except Exception:
        return None


def _workers_reporting() -> int | None:
    try:
        return NodeReport.objects.filter(role="worker", expires_at__gt=timezone.now()).count() or None
    except DatabaseError:
        return None


def workers_answering(timeout_s: float = 1.0) -> int | None:
    """How many workers answered a ping; None where the broker has no broadcast (filesystem).

    The ping stops waiting once as many workers have answered as have recently reported
    themselves, so a healthy installation answers in milliseconds, not after the timeout; a
    worker that reported but does not answer still costs the whole timeout, and is not counted.
    """
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        return None
    replies = app.control.ping(timeout=timeout_s, limit=_workers_reporting())
    return len(replies or [])
