"""What the request statistics keep: statement shapes, frontend error groups, profiles."""

from __future__ import annotations

from django.db import models


class QueryFingerprint(models.Model):
    """A statement shape seen by the query observer: literals and parameters folded, never kept."""

    fingerprint = models.CharField(max_length=16, unique=True)
    normalized = models.TextField()
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


class Profile(models.Model):
    """One profiled request or task run: its call tree and the figures of that run."""

    class Kind(models.TextChoices):
        REQUEST = "request"
        TASK = "task"

    class Profiler(models.TextChoices):
        PYINSTRUMENT = "pyinstrument"
        CPROFILE = "cprofile"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    name = models.CharField(max_length=300)  # the route pattern or the task name
    profiler = models.CharField(max_length=16, choices=Profiler.choices)
    request_id = models.CharField(max_length=128, blank=True, default="", db_index=True)
    method = models.CharField(max_length=8, blank=True, default="")
    path = models.CharField(max_length=500, blank=True, default="")
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.FloatField()
    queries = models.PositiveIntegerField(default=0)
    query_ms = models.FloatField(default=0.0)
    user = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL)
    html = models.TextField(blank=True, default="")  # pyinstrument's call tree, or cProfile's table
    speedscope = models.TextField(blank=True, default="")  # pyinstrument only
    pstats = models.BinaryField(blank=True, default=b"")  # cProfile only
    truncated = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("profile_requests", "Can profile requests and tasks")]

    def __str__(self) -> str:
        return f"{self.kind} {self.name} {self.duration_ms:.0f} ms ({self.profiler})"


class ProfileArm(models.Model):
    """A standing request to profile the next N runs of a route or a task."""

    class Target(models.TextChoices):
        ROUTE = "route"
        TASK = "task"

    target = models.CharField(max_length=8, choices=Target.choices, default=Target.ROUTE)
    name = models.CharField(
        max_length=300, help_text="a route as in the stats (e.g. 'GET /health/stats') or a task name"
    )
    profiler = models.CharField(max_length=16, choices=Profile.Profiler.choices, default=Profile.Profiler.PYINSTRUMENT)
    remaining = models.PositiveIntegerField(default=1)
    expires_at = models.DateTimeField()
    created_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.target} {self.name}: next {self.remaining} ({self.profiler})"


class SlowRequest(models.Model):
    """A request over OPSITE_SLOW_REQUEST_MS: its ids (the exemplars on /metrics point here), its
    figures and its statements (normalized, never a value), slowest first."""

    request_id = models.CharField(max_length=128, db_index=True)
    trace_id = models.CharField(max_length=32, blank=True, default="", db_index=True)
    route = models.CharField(max_length=300, db_index=True)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=500)  # without the query string, which may carry a token
    status_code = models.PositiveSmallIntegerField()
    duration_ms = models.FloatField()
    queries = models.PositiveIntegerField(default=0)
    query_ms = models.FloatField(default=0.0)
    statements = models.JSONField(default=list, blank=True)  # [{fingerprint, sql, count, ms}]
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.route} {self.duration_ms:.0f} ms ({self.request_id})"
