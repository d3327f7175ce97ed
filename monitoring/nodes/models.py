"""Node reports and the snapshots behind the dashboard's history."""

from __future__ import annotations

from django.db import models


class NodeReport(models.Model):
    """What one process (web, worker, beat) last said about itself and its host.

    Each process writes its own row every few seconds; a row past ``expires_at`` is a node that
    stopped, and the snapshot job leaves it out."""

    node = models.CharField(max_length=160, primary_key=True)  # host:pid
    host = models.CharField(max_length=128, db_index=True)
    role = models.CharField(max_length=16)
    figures = models.JSONField(default=dict)
    reported_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.node} ({self.role})"
