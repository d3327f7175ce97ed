"""Alert rules, their state per label set, channels, silences, mute windows, notifications."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models

from monitoring.alerts.catalog import scope_problem


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
        DEPENDENCY = "dependency", "per dependency"

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
        problem = scope_problem(self.metric, self.scope)
        if problem:
            raise ValidationError(problem)


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
