"""The run ledger: one row per run of a scheduled job."""

from __future__ import annotations

from django.db import models


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
