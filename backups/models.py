from __future__ import annotations

from django.db import models


class Backup(models.Model):
    """One backup and its manifest: what was dumped, how, where it is, and whether it restores."""

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        VERIFIED = "verified"
        VERIFY_FAILED = "verify_failed"

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING, db_index=True)
    reason = models.CharField(max_length=64, default="manual")
    engine = models.CharField(max_length=16)  # postgresql | sqlite
    format = models.CharField(max_length=32)  # pg_dump custom | sqlite file
    compression = models.CharField(max_length=32, default="zstd")
    size_bytes = models.BigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True, default="")
    storage = models.CharField(max_length=200, blank=True, default="")
    path = models.CharField(max_length=500, blank=True, default="")
    server_version = models.CharField(max_length=100, blank=True, default="")
    tool_version = models.CharField(max_length=100, blank=True, default="")
    migrations = models.JSONField(default=dict, blank=True)  # app -> latest applied migration
    row_counts = models.JSONField(default=dict, blank=True)  # table -> rows at the dump's snapshot
    node = models.CharField(max_length=128, blank=True, default="")
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    dump_seconds = models.FloatField(null=True, blank=True)
    upload_seconds = models.FloatField(null=True, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    verify_seconds = models.FloatField(null=True, blank=True)  # the measured time to recover
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-started_at"]
        permissions = [
            ("download_backup", "Can download backup files"),
            ("run_backup", "Can start a backup or a verification (a full restore into a scratch database)"),
        ]

    def __str__(self) -> str:
        return f"backup {self.pk} ({self.status}, {self.started_at:%Y-%m-%d %H:%M})"

    @property
    def is_good(self) -> bool:
        return self.status == self.Status.VERIFIED


class BackupLock(models.Model):
    """One row: who runs the backup work now, and until when the claim holds."""

    name = models.CharField(max_length=32, primary_key=True)
    holder = models.CharField(max_length=200, blank=True, default="")
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} held by {self.holder or 'nobody'} until {self.expires_at}"


class RestoreDrill(models.Model):
    """One restore drill: the newest base backup and the archived WAL restored into a scratch
    cluster, the application's invariants checked there, the copy dropped."""

    class Status(models.TextChoices):
        RUNNING = "running"
        PASSED = "passed"
        FAILED = "failed"

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING, db_index=True)
    reason = models.CharField(max_length=64, default="scheduled")
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    base = models.CharField(max_length=200, blank=True, default="", help_text="the base backup restored")
    segments = models.IntegerField(null=True, blank=True, help_text="WAL segments replayed")
    rto_seconds = models.FloatField(null=True, blank=True, help_text="fetch, unpack, replay and promote")
    restored_to = models.DateTimeField(null=True, blank=True, help_text="the last transaction in the copy")
    checks = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    node = models.CharField(max_length=128, blank=True, default="")

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"restore drill {self.pk} ({self.status}, {self.started_at:%Y-%m-%d %H:%M})"
