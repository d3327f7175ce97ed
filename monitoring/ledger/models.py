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


class Deployment(models.Model):
    """One deploy or rollback of a release: who, which version, what became of it. Shown on the
    dashboard's charts as a mark at the moment it finished."""

    class Kind(models.TextChoices):
        DEPLOY = "deploy", "deploy"
        ROLLBACK = "rollback", "rollback"

    class Result(models.TextChoices):
        RUNNING = "running", "running"
        SUCCEEDED = "succeeded", "succeeded"
        ROLLED_BACK = "rolled_back", "rolled back"
        FAILED = "failed", "failed"

    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.DEPLOY)
    version = models.CharField(max_length=200, help_text="the release deployed (or rolled back to)")
    previous_version = models.CharField(max_length=200, blank=True, default="")
    by = models.CharField(max_length=150, help_text="who ran it")
    layout = models.CharField(max_length=32, help_text="plain, compose or kubernetes")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    result = models.CharField(max_length=16, choices=Result.choices, default=Result.RUNNING)
    reason = models.TextField(blank=True, default="", help_text="why it failed or was rolled back")
    backup_id = models.IntegerField(null=True, blank=True, help_text="the verified backup taken before it")
    migrations = models.JSONField(default=list, blank=True, help_text="migrations it applied")
    gate = models.JSONField(default=dict, blank=True, help_text="the health gate's figures")
    steps = models.JSONField(default=list, blank=True, help_text="each step, its outcome and duration")

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["-started_at"], name="deployment_started_idx")]

    def __str__(self) -> str:
        return f"{self.kind} {self.version} @ {self.started_at:%Y-%m-%d %H:%M:%S}: {self.result}"
