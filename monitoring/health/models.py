"""What the health checks keep: heartbeats of scheduled jobs."""

from __future__ import annotations

from django.db import models


class Heartbeat(models.Model):
    """The last time something alive said so (beat's jobs, by name)."""

    name = models.CharField(max_length=64, primary_key=True)
    at = models.DateTimeField()
    node = models.CharField(max_length=128, blank=True, default="")

    def __str__(self) -> str:
        return f"{self.name} @ {self.at:%Y-%m-%d %H:%M:%S}"
