"""The record of deploys and rollbacks: written by the deploy commands, read by the dashboard."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import DatabaseError
from django.utils import timezone

from monitoring.ledger.models import Deployment


def deployment_begin(*, kind: str, version: str, previous_version: str, by: str, layout: str) -> Deployment:
    return Deployment.objects.create(kind=kind, version=version, previous_version=previous_version, by=by,
                                     layout=layout, started_at=timezone.now())  # fmt: skip


def deployment_save(deployment: Deployment, **fields: Any) -> None:
    """Update the record; a finished result stamps its time."""
    for name, value in fields.items():
        setattr(deployment, name, value)
    if deployment.result != Deployment.Result.RUNNING and deployment.finished_at is None:
        deployment.finished_at = timezone.now()
    deployment.save()


def deployment_save_quietly(deployment: Deployment | None, **fields: Any) -> str | None:
    """As ``deployment_save``, but a database that cannot be written (it is being restored, or
    is down) does not stop a deploy: the error is returned for the transcript."""
    if deployment is None:
        return None
    try:
        deployment_save(deployment, **fields)
    except DatabaseError as exc:
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    return None


def deployments_interrupted(*, but: int) -> int:
    """Mark as failed the deploys a restored database shows as running (the backup was taken
    while they ran); how many."""
    return (Deployment.objects.filter(result=Deployment.Result.RUNNING).exclude(pk=but)
            .update(result=Deployment.Result.FAILED, finished_at=timezone.now(),
                    reason="interrupted: the database was restored to a backup taken while it ran"))  # fmt: skip


def deployments_between(since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Deploys and rollbacks that started in [since, until], oldest first, as chart marks."""
    rows = Deployment.objects.filter(started_at__gte=since, started_at__lte=until).order_by("started_at")
    return [
        {"id": d.pk, "kind": d.kind, "version": d.version, "previous_version": d.previous_version, "by": d.by,
         "result": d.result, "started_at": d.started_at.timestamp(),
         "at": (d.finished_at or d.started_at).timestamp(), "reason": d.reason[:200]}
        for d in rows
    ]  # fmt: skip


def deployments_marker() -> tuple[int | None, str | None]:
    """Changes when a deploy starts or finishes (for caches of what shows them)."""
    newest = Deployment.objects.order_by("-pk").values_list("pk", "result").first()
    return (newest[0], newest[1]) if newest else (None, None)
