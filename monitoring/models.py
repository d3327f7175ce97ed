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


class Severity(models.TextChoices):
    INFO = "info", "info"
    WARNING = "warning", "warning"
    CRITICAL = "critical", "critical"


class NotificationChannel(models.Model):
    """Where notifications go: an email list, a Slack incoming webhook or any JSON webhook."""

    class Kind(models.TextChoices):
        EMAIL = "email", "email"
        SLACK = "slack", "Slack incoming webhook"
        WEBHOOK = "webhook", "JSON webhook"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    target = models.TextField(help_text="comma-separated addresses (email) or the webhook URL")
    enabled = models.BooleanField(default=True)
    # the circuit breaker: after OPSITE_ALERT_CIRCUIT_FAILURES failures in a row the channel is
    # left alone until open_until, then one trial delivery decides
    consecutive_failures = models.PositiveIntegerField(default=0, editable=False)
    open_until = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class AlertRule(models.Model):
    class Scope(models.TextChoices):
        OVERALL = "overall", "overall"
        HOST = "host", "per host"
        RESTAURANT = "restaurant", "per restaurant"

    class Comparison(models.TextChoices):
        ABOVE = "gt", ">"
        AT_LEAST = "gte", "≥"
        BELOW = "lt", "<"
        AT_MOST = "lte", "≤"

    name = models.CharField(max_length=120, unique=True)
    metric = models.CharField(max_length=64, help_text="one of the metrics in monitoring.alerts.metrics")
    scope = models.CharField(max_length=16, choices=Scope.choices, default=Scope.OVERALL)
    comparison = models.CharField(max_length=3, choices=Comparison.choices, default=Comparison.ABOVE)
    threshold = models.FloatField()
    recovery_threshold = models.FloatField(
        null=True, blank=True, help_text="resolves only past this value (defaults to the threshold); stops flapping"
    )
    window_s = models.PositiveIntegerField(default=300, help_text="the metric is read over this many seconds")
    for_s = models.PositiveIntegerField(default=60, help_text="pending this long before firing")
    severity = models.CharField(max_length=16, choices=Severity.choices, default=Severity.WARNING)
    channels = models.ManyToManyField(NotificationChannel, blank=True, related_name="rules")
    repeat_interval_s = models.PositiveIntegerField(default=4 * 3600, help_text="re-notify a firing alert this often")
    enabled = models.BooleanField(default=True)
    description = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from .alerts.metrics import METRICS

        metric = METRICS.get(self.metric)
        if metric is None:
            raise ValidationError({"metric": f"unknown metric; one of {', '.join(METRICS)}"})
        if self.scope not in metric.scopes:
            raise ValidationError({"scope": f"{self.metric} can be watched {', '.join(metric.scopes)}"})


class Alert(models.Model):
    """The state of one rule for one label set (its fingerprint), kept across restarts."""

    class State(models.TextChoices):
        INACTIVE = "inactive", "inactive"
        PENDING = "pending", "pending"
        FIRING = "firing", "firing"
        RESOLVED = "resolved", "resolved"
        NO_DATA = "nodata", "no data"

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    fingerprint = models.CharField(max_length=64)
    labels = models.JSONField(default=dict)
    state = models.CharField(max_length=16, choices=State.choices, default=State.INACTIVE, db_index=True)
    value = models.FloatField(null=True, blank=True)
    pending_since = models.DateTimeField(null=True, blank=True)
    fired_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    last_notified_at = models.DateTimeField(null=True, blank=True)
    held = models.BooleanField(default=False, help_text="inhibited: the database it depends on is down")
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.CharField(max_length=150, blank=True, default="")
    version = models.PositiveIntegerField(default=0)  # bumped by every transition (compare-and-set)

    class Meta:
        ordering = ["-fired_at", "rule__name"]
        constraints = [models.UniqueConstraint(fields=["rule", "fingerprint"], name="alert_unique")]

    def __str__(self) -> str:
        labels = ", ".join(f"{k}={v}" for k, v in self.labels.items())
        return f"{self.rule.name}{' {' + labels + '}' if labels else ''}: {self.state}"


class Silence(models.Model):
    """No notifications for alerts whose labels match, between starts_at and ends_at."""

    matchers = models.JSONField(help_text='label → value, all must match: {"rule": "...", "host": "web-1"}')
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=300)
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-ends_at"]

    def __str__(self) -> str:
        return f"{self.matchers} until {self.ends_at:%Y-%m-%d %H:%M} ({self.reason})"


class MuteWindow(models.Model):
    """A weekly recurring quiet time, such as a restaurant's closed hours, in a time zone."""

    matchers = models.JSONField(help_text='label → value, all must match: {"restaurant": "trattoria"}')
    weekdays = models.CharField(max_length=20, default="0,1,2,3,4,5,6", help_text="0 = Monday")
    start_time = models.TimeField()
    end_time = models.TimeField(help_text="earlier than the start: the window runs past midnight")
    timezone = models.CharField(max_length=64, default="UTC")
    reason = models.CharField(max_length=300, blank=True, default="")

    def __str__(self) -> str:
        return f"{self.matchers} {self.start_time:%H:%M}-{self.end_time:%H:%M} {self.timezone}"


class Notification(models.Model):
    """One message for one alert transition on one channel: the log, and the outbox it is sent from."""

    class Kind(models.TextChoices):
        FIRING = "firing", "firing"
        REPEAT = "repeat", "repeat"
        RESOLVED = "resolved", "resolved"

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        SENT = "sent", "sent"
        FAILED = "failed", "failed (gave up)"
        SUPPRESSED = "suppressed", "suppressed"

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="notifications")
    channel = models.ForeignKey(NotificationChannel, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    alert_version = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    reason = models.CharField(max_length=200, blank=True, default="")
    payload = models.JSONField(default=dict)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_index=True)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # one message per transition and channel, however many evaluators raced to it
            models.UniqueConstraint(fields=["alert", "alert_version", "kind", "channel"], name="notification_once"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.alert_id} → {self.channel_id}: {self.status}"


class TaskRun(models.Model):
    """One run of a scheduled job: the ledger that shows missed and duplicate runs."""

    class Status(models.TextChoices):
        RUNNING = "running", "running"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"
        DUPLICATE = "duplicate", "duplicate (not run)"
        MISSED = "missed", "missed"

    job = models.CharField(max_length=200, help_text="the periodic task's name")
    task = models.CharField(max_length=200)
    task_id = models.CharField(max_length=64, unique=True)
    scheduled_for = models.DateTimeField(help_text="the schedule slot this run belongs to")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    duration_ms = models.FloatField(null=True, blank=True)
    node = models.CharField(max_length=160)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            # two beats (or a redelivery) cannot run one slot twice: the second claim fails
            models.UniqueConstraint(
                fields=["job", "scheduled_for"],
                condition=~models.Q(status="duplicate"),
                name="task_run_once_per_slot",
            ),
        ]
        indexes = [models.Index(fields=["job", "-scheduled_for"], name="task_run_job_idx")]

    def __str__(self) -> str:
        return f"{self.job} @ {self.scheduled_for:%Y-%m-%d %H:%M:%S}: {self.status}"
