"""Node reports and the snapshots behind the dashboard's history."""

from __future__ import annotations

from django.db import models


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
    """Orders opened and revenue taken by one restaurant over one minute or hour, and its service
    levels (rows for restaurants that were open or active)."""

    resolution = models.PositiveIntegerField(choices=Resolution.choices, default=Resolution.MINUTE)
    taken_at = models.DateTimeField()
    restaurant = models.ForeignKey("realtime.Restaurant", on_delete=models.CASCADE, related_name="snapshots")
    orders = models.IntegerField(default=0)
    paid = models.IntegerField(default=0)
    revenue = models.DecimalField(max_digits=16, decimal_places=2, default=0)
    # service levels: frames written to boards (and how many later than the delivery objective's
    # time), boards' acknowledgements (likewise), seconds open and seconds with a board connected
    deliveries = models.IntegerField(default=0)
    deliveries_late = models.IntegerField(default=0)
    acks = models.IntegerField(default=0)
    acks_late = models.IntegerField(default=0)
    open_s = models.IntegerField(default=0)
    connected_s = models.IntegerField(default=0)

    class Meta:
        ordering = ["-taken_at"]
        constraints = [
            models.UniqueConstraint(fields=["resolution", "restaurant", "taken_at"], name="restaurant_snapshot_unique"),
        ]
        indexes = [models.Index(fields=["resolution", "taken_at"], name="restaurant_snapshot_range_idx")]

    def __str__(self) -> str:
        return f"{self.restaurant_id} @ {self.taken_at:%Y-%m-%d %H:%M}"
