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


class Resolution(models.IntegerChoices):
    MINUTE = 60, "minute"
    HOUR = 3600, "hour"
    SIX_HOURS = 21600, "six hours"


CLUSTER = "*"  # the host of the rows that hold figures for the whole installation


class MetricSnapshot(models.Model):
    """One host's figures (or, for host ``*``, the whole installation's) over one minute or hour.

    Hour rows are rolled up from minute rows, six-hour rows from hour rows: gauges hold the mean
    with min/max in ``spread``, counts are summed, and percentiles come from the merged latency
    histogram."""

    resolution = models.PositiveIntegerField(choices=Resolution.choices, default=Resolution.MINUTE)
    taken_at = models.DateTimeField(help_text="start of the minute or hour")
    host = models.CharField(max_length=128)
    nodes = models.PositiveIntegerField(default=0)
    # host figures
    cpu_percent = models.FloatField(null=True, blank=True)
    memory_percent = models.FloatField(null=True, blank=True)
    disk_percent = models.FloatField(null=True, blank=True)
    load_1 = models.FloatField(null=True, blank=True)
    process_rss_bytes = models.BigIntegerField(null=True, blank=True)
    open_files = models.IntegerField(null=True, blank=True)
    # traffic (the host's processes, or all of them)
    requests = models.IntegerField(default=0)
    errors = models.IntegerField(default=0)
    slow_requests = models.IntegerField(default=0)
    request_rate = models.FloatField(default=0.0)
    error_rate = models.FloatField(default=0.0)
    p50_ms = models.FloatField(null=True, blank=True)
    p95_ms = models.FloatField(null=True, blank=True)
    p99_ms = models.FloatField(null=True, blank=True)
    sockets = models.IntegerField(default=0)
    # installation figures (host ``*`` only)
    db_connections = models.IntegerField(null=True, blank=True)
    db_size_bytes = models.BigIntegerField(null=True, blank=True)
    redis_memory_bytes = models.BigIntegerField(null=True, blank=True)
    redis_clients = models.IntegerField(null=True, blank=True)
    queue_depth = models.IntegerField(null=True, blank=True)
    workers = models.IntegerField(null=True, blank=True)
    latency_histogram = models.JSONField(default=dict, blank=True)
    spread = models.JSONField(default=dict, blank=True, help_text="rolled-up rows: [min, max] per gauge")

    class Meta:
        ordering = ["-taken_at", "host"]
        constraints = [
            models.UniqueConstraint(fields=["resolution", "host", "taken_at"], name="metric_snapshot_unique"),
        ]
        indexes = [models.Index(fields=["resolution", "taken_at"], name="metric_snapshot_range_idx")]
        permissions = [("view_dashboard", "Can view the performance dashboard")]

    def __str__(self) -> str:
        return f"{self.host} @ {self.taken_at:%Y-%m-%d %H:%M} ({self.get_resolution_display()})"


class RestaurantSnapshot(models.Model):
    """Orders opened and revenue taken by one restaurant over one minute or hour (only active ones)."""

    resolution = models.PositiveIntegerField(choices=Resolution.choices, default=Resolution.MINUTE)
    taken_at = models.DateTimeField()
    restaurant = models.ForeignKey("realtime.Restaurant", on_delete=models.CASCADE, related_name="snapshots")
    orders = models.IntegerField(default=0)
    paid = models.IntegerField(default=0)
    revenue = models.DecimalField(max_digits=16, decimal_places=2, default=0)

    class Meta:
        ordering = ["-taken_at"]
        constraints = [
            models.UniqueConstraint(fields=["resolution", "restaurant", "taken_at"], name="restaurant_snapshot_unique"),
        ]
        indexes = [models.Index(fields=["resolution", "taken_at"], name="restaurant_snapshot_range_idx")]

    def __str__(self) -> str:
        return f"{self.restaurant_id} @ {self.taken_at:%Y-%m-%d %H:%M}"
