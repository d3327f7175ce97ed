from __future__ import annotations

from django.db import models


class Heartbeat(models.Model):
    """The last time something alive said so (beat's jobs, by name)."""

    name = models.CharField(max_length=64, primary_key=True)
    at = models.DateTimeField()
    node = models.CharField(max_length=128, blank=True, default="")

    def __str__(self) -> str:
        return f"{self.name} @ {self.at:%Y-%m-%d %H:%M:%S}"


class QueryFingerprint(models.Model):
    """A statement shape seen by the query observer, with one sample to EXPLAIN."""

    fingerprint = models.CharField(max_length=16, unique=True)
    normalized = models.TextField()
    sample_sql = models.TextField()
    sample_params = models.TextField(default="[]", blank=True)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField(db_index=True)
    n_plus_one_route = models.CharField(max_length=300, blank=True, default="")
    last_n_plus_one = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_seen"]

    def __str__(self) -> str:
        return f"{self.fingerprint}: {self.normalized[:80]}"


class FrontendErrorGroup(models.Model):
    """Error reports from the POS apps, grouped by fingerprint."""

    fingerprint = models.CharField(max_length=40, unique=True)
    error_type = models.CharField(max_length=200)
    message = models.TextField()
    screen = models.CharField(max_length=200, blank=True, default="")
    app_version = models.CharField(max_length=64, blank=True, default="")
    count = models.PositiveBigIntegerField(default=0)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField(db_index=True)
    sample_stack = models.TextField(blank=True, default="")
    sample_device = models.JSONField(default=dict, blank=True)
    restaurant = models.ForeignKey("realtime.Restaurant", null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-last_seen"]

    def __str__(self) -> str:
        return f"{self.error_type}: {self.message[:80]} ({self.count})"
