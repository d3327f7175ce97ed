from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage
from django.core.management import CommandError, call_command
from django.utils import timezone

from backups.engines import BackupError
from backups.models import Backup, BackupLock
from backups.services import backup_create, backup_verify, job_lock, partial_path, reap_stale_runs, retention_apply
from backups.signals import backup_finished
from backups.storage import backup_storage
from realtime.models import OrderEvent
from tests.conftest import ROOT, server_env
from tests.realtime.conftest import event, ingest_sync

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("backup_dir")]


def scratch_databases() -> list[str]:
    with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres") as conn:
        return [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'opsite_verify_%'")]


def test_backup_and_verify_on_postgres(make_staff, needs_postgres):
    staff = make_staff()
    ingest_sync(staff.restaurant, *[event(f"B{n}") for n in range(25)])
    announced: list[dict[str, object]] = []
    listener = lambda sender, frame, **kwargs: announced.append(frame)  # noqa: E731
    backup_finished.connect(listener)
    began = time.monotonic()
    try:
        backup = backup_create(reason="test")
    finally:
        backup_finished.disconnect(listener)
    took = time.monotonic() - began
    assert announced == [{"type": "backup.finished", "id": backup.pk, "status": "succeeded",
                          "size_bytes": backup.size_bytes, "error": ""}]  # fmt: skip
    assert backup.status == Backup.Status.SUCCEEDED and len(backup.sha256) == 64 and backup.size_bytes > 0
    assert 0 < backup.dump_seconds <= took and 0 <= backup.upload_seconds <= took
    assert backup.engine == "postgresql" and backup.format == "pg_dump custom" and backup.compression == "zstd"
    assert backup.row_counts["public.realtime_orderevent"] == 25
    from django.db.migrations.loader import MigrationLoader

    newest = max(name for app, name in MigrationLoader(None, ignore_no_migrations=True).graph.leaf_nodes()
                 if app == "realtime")  # fmt: skip
    assert backup.migrations["realtime"] == newest and "PostgreSQL" in backup.tool_version
    assert backup_storage().exists(backup.path) and backup.dump_seconds is not None
    assert not partial_path(backup).exists()

    began = time.monotonic()
    verified = backup_verify(backup=backup)
    assert verified.status == Backup.Status.VERIFIED and 0 < verified.verify_seconds <= time.monotonic() - began
    assert scratch_databases() == []


def test_a_restore_missing_a_row_fails_verification(make_staff, backup_dir, needs_postgres):
    """The manifest says one more order than the dump holds, as when a row is lost between
    dump and restore: the restored count differs, and the backup is not counted good."""
    staff = make_staff()
    ingest_sync(staff.restaurant, *[event(f"M{n}") for n in range(5)])
    backup = backup_create(reason="test")
    backup.row_counts = {**backup.row_counts, "public.realtime_orderevent": 6}
    backup.save(update_fields=["row_counts"])
    began = time.monotonic()
    with pytest.raises(BackupError, match="realtime_orderevent"):
        backup_verify(backup=backup)
    backup.refresh_from_db()
    assert backup.status == Backup.Status.VERIFY_FAILED and not backup.is_good
    assert 0 < backup.verify_seconds <= time.monotonic() - began
    assert scratch_databases() == []


def test_a_corrupted_backup_fails_verification_loudly(make_staff, backup_dir, needs_postgres):
    make_staff()
    backup = backup_create(reason="test")
    stored = backup_dir / "files" / backup.path
    data = bytearray(stored.read_bytes())
    for offset in (len(data) // 3, len(data) // 2, len(data) - 10):
        data[offset] ^= 0xFF
    stored.write_bytes(bytes(data))
    with pytest.raises(BackupError, match=r"checksum mismatch|corrupt"):
        backup_verify(backup=backup)
    backup.refresh_from_db()
    assert backup.status == Backup.Status.VERIFY_FAILED and "verification" in backup.error
    assert scratch_databases() == []


def test_overlapping_runs_refuse(needs_postgres):
    with job_lock("someone-else"), pytest.raises(BackupError, match="another backup job is running"):
        backup_create(reason="test")
    assert backup_create(reason="test").status == Backup.Status.SUCCEEDED  # the lock was released


def slow_pg_dump(tmp_path: Path, seconds: int) -> str:
    """A PATH whose pg_dump waits before dumping, so a run can be interrupted in the middle."""
    slow_bin = tmp_path / "bin"
    slow_bin.mkdir()
    (slow_bin / "pg_dump").write_text(
        f'#!/bin/sh\ncase "$1" in --version) exec /usr/bin/pg_dump --version;; esac\nsleep {seconds}\n'
        'exec /usr/bin/pg_dump "$@"\n'
    )
    (slow_bin / "pg_dump").chmod(0o755)
    return f"{slow_bin}:{os.environ['PATH']}"


def test_the_reaper_fails_runs_left_by_a_killed_worker(backup_dir, tmp_path, needs_postgres):
    env = {**server_env(), "PATH": slow_pg_dump(tmp_path, 60), "OPSITE_BACKUP_DIR": str(backup_dir)}
    worker = subprocess.Popen([sys.executable, "manage.py", "backup"], cwd=ROOT, env=env, start_new_session=True)
    deadline = time.monotonic() + 30
    while not Backup.objects.filter(status=Backup.Status.RUNNING).exists():
        assert time.monotonic() < deadline, "the backup never started"
        time.sleep(0.2)
    backup = Backup.objects.get(status=Backup.Status.RUNNING)
    partial = backup_dir / "partial" / f"backup-{backup.pk}.partial"
    while not partial.exists():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()

    assert reap_stale_runs() == []  # not past its time limit yet
    reaped = reap_stale_runs(now=timezone.now() + timedelta(days=1))
    backup.refresh_from_db()
    assert reaped == [backup.pk] and backup.status == Backup.Status.FAILED and "reaped" in backup.error
    assert not partial.exists() and not backup.path
    # The dead run's claim on the lock went with it: the next backup runs at once.
    assert backup_create(reason="after the reaper").status == Backup.Status.SUCCEEDED


def test_a_worker_told_to_stop_mid_backup_finishes_it_first(backup_dir, tmp_path, start_celery, needs_postgres,
                                                            needs_redis):  # fmt: skip
    from backups.tasks import backup_create_task
    from opsite.celery import app

    app.control.purge()
    worker = start_celery("worker", "-c", "1", "--without-mingle", "--without-gossip", "-n",
                          f"stop-test-{time.time_ns()}@%h",
                          extra_env={"PATH": slow_pg_dump(tmp_path, 3), "OPSITE_BACKUP_DIR": str(backup_dir)})  # fmt: skip
    try:
        backup_create_task.delay("stopped worker")
        deadline = time.monotonic() + 40
        while not Backup.objects.filter(reason="stopped worker", status=Backup.Status.RUNNING).exists():
            assert time.monotonic() < deadline, (
                f"the backup never started: {list(Backup.objects.values('reason', 'status', 'error'))}, "
                f"lock {list(BackupLock.objects.values('holder', 'expires_at'))}"
            )
            time.sleep(0.1)
        worker.send_signal(signal.SIGTERM)  # what a deploy does: a warm shutdown
        assert worker.wait(timeout=60) == 0
    finally:
        app.control.purge()  # the verification it queued is not this test's business
    backup = Backup.objects.get(reason="stopped worker")
    assert backup.status == Backup.Status.SUCCEEDED and backup.size_bytes
    assert (backup_dir / "files" / backup.path).stat().st_size == backup.size_bytes


def test_the_reaper_drops_scratch_databases_a_dead_verification_left(needs_postgres):
    old_stamp = int(time.time()) - settings.OPSITE_BACKUP_TIME_LIMIT_S - 60
    stale, fresh = f"opsite_verify_{old_stamp}_deadbeef", f"opsite_verify_{int(time.time())}_cafe0001"
    with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        for name in (stale, fresh):
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        reap_stale_runs()
        assert scratch_databases() == [fresh], "only the one older than the time limit goes"
    finally:
        with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
            for name in (stale, fresh):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def test_pg_dump_missing_or_failing_gives_a_clear_error(backup_dir, tmp_path, needs_postgres):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    env = {**server_env(), "PATH": str(empty), "OPSITE_BACKUP_DIR": str(backup_dir)}
    missing = subprocess.run([sys.executable, "manage.py", "backup"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert missing.returncode != 0
    assert missing.stderr.strip().startswith("CommandError: pg_dump is not installed")

    failing = tmp_path / "failing-bin"
    failing.mkdir()
    (failing / "pg_dump").write_text(
        '#!/bin/sh\ncase "$1" in --version) echo "pg_dump 15";; *) echo "no space left" >&2; exit 3;; esac\n'
    )
    (failing / "pg_dump").chmod(0o755)
    env["PATH"] = f"{failing}:{os.environ['PATH']}"
    failed = subprocess.run([sys.executable, "manage.py", "backup"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert failed.returncode != 0 and "pg_dump failed (exit 3): no space left" in failed.stderr
    row = Backup.objects.order_by("-pk").first()
    assert row is not None and row.status == Backup.Status.FAILED and "no space left" in row.error
    assert not any((backup_dir / "partial").iterdir()) and not (backup_dir / "files").exists()


def _backup_row(status: str, days_ago: float, storage_dir: Path) -> Backup:
    backup = Backup.objects.create(status=status, engine="postgresql", format="pg_dump custom")
    name = f"old-{backup.pk}.zst"
    (storage_dir / "files").mkdir(parents=True, exist_ok=True)
    (storage_dir / "files" / name).write_bytes(b"x")
    Backup.objects.filter(pk=backup.pk).update(started_at=timezone.now() - timedelta(days=days_ago), path=name)
    return Backup.objects.get(pk=backup.pk)


def test_retention_keeps_what_it_must(backup_dir, settings):
    settings.OPSITE_BACKUP_KEEP_DAYS = 7
    settings.OPSITE_BACKUP_KEEP_MIN = 3
    V, F, S = Backup.Status.VERIFIED, Backup.Status.FAILED, Backup.Status.SUCCEEDED
    ancient_unverified = _backup_row(S, 40, backup_dir)  # no newer verified yet at first... see below
    old_verified_1 = _backup_row(V, 30, backup_dir)
    old_failed = _backup_row(F, 25, backup_dir)
    old_verified_2 = _backup_row(V, 20, backup_dir)
    old_verified_3 = _backup_row(V, 15, backup_dir)
    recent_succeeded = _backup_row(S, 3, backup_dir)  # inside the window, a newer verified one exists
    recent_failed = _backup_row(F, 2, backup_dir)
    newest_verified = _backup_row(V, 1, backup_dir)
    deleted = retention_apply()
    # Past the window, with a newer verified one, and not among the newest three verified: gone.
    assert set(deleted) == {ancient_unverified.pk, old_verified_1.pk, old_failed.pk}
    kept = {old_verified_2.pk, old_verified_3.pk, recent_succeeded.pk, recent_failed.pk, newest_verified.pk}
    assert set(Backup.objects.values_list("pk", flat=True)) == kept
    assert not (backup_dir / "files" / old_verified_1.path).exists()
    assert (backup_dir / "files" / old_verified_3.path).exists()


def test_retention_never_deletes_without_a_newer_verified_backup(backup_dir, settings):
    settings.OPSITE_BACKUP_KEEP_DAYS = 1
    settings.OPSITE_BACKUP_KEEP_MIN = 1
    only_verified = _backup_row(Backup.Status.VERIFIED, 60, backup_dir)
    newer_unverified = _backup_row(Backup.Status.SUCCEEDED, 50, backup_dir)
    failed_after = _backup_row(Backup.Status.VERIFY_FAILED, 45, backup_dir)
    assert retention_apply() == []
    assert Backup.objects.filter(pk__in=[only_verified.pk, newer_unverified.pk, failed_after.pk]).count() == 3


def test_restore_refuses_without_yes_and_across_engines(needs_postgres):
    with pytest.raises(CommandError, match="pass --yes"):
        call_command("restore_backup", "latest")
    sqlite_backup = Backup.objects.create(status=Backup.Status.VERIFIED, engine="sqlite", format="sqlite file",
                                          path="x.zst", sha256="0" * 64)  # fmt: skip
    with pytest.raises(CommandError, match="is a sqlite backup; the target is postgresql"):
        call_command("restore_backup", str(sqlite_backup.pk), "--yes")
    with pytest.raises(CommandError, match="no backup with id 999999"):
        call_command("restore_backup", "999999", "--yes")


def test_restore_into_another_database_brings_the_rows_back(make_staff, needs_postgres, capsys):
    staff = make_staff()
    ingest_sync(staff.restaurant, *[event(f"R{n}") for n in range(12)])
    backup = backup_create(reason="test")
    target = f"opsite_restore_test_{os.getpid()}"
    with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {target}")
        admin.execute(f"CREATE DATABASE {target}")
    try:
        call_command(
            "restore_backup", str(backup.pk), "--yes", "--database-url", f"postgres://postgres@127.0.0.1:5432/{target}"
        )
        assert f"restored backup {backup.pk}" in capsys.readouterr().out
        with psycopg.connect(f"postgres://postgres@127.0.0.1:5432/{target}") as conn:
            assert conn.execute("SELECT count(*) FROM realtime_orderevent").fetchone()[0] == 12
    finally:
        with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {target} WITH (FORCE)")
    assert OrderEvent.objects.count() == 12


def test_backup_and_verify_on_sqlite_end_to_end(tmp_path):
    env = {
        **server_env(),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'embedded.sqlite3'}",
        "OPSITE_BACKUP_DIR": str(tmp_path / "b"),
    }
    env.pop("REDIS_URL", None)

    def run(*args):
        return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)

    assert run("migrate", "-v0").returncode == 0
    assert run("create_restaurant", "lite", "--name", "Lite").returncode == 0
    made = run("backup", "--verify")
    assert made.returncode == 0, made.stderr
    assert "verified: restored in" in made.stdout and "sha256" in made.stdout
    again = run("verify_backup", "latest")
    assert again.returncode == 0 and "matching row counts" in again.stdout
    stored = next((tmp_path / "b" / "files").iterdir())
    stored.write_bytes(stored.read_bytes()[:-100] + b"\0" * 100)
    broken = run("verify_backup", "latest")
    assert broken.returncode != 0 and broken.stderr.strip().startswith("CommandError: backup")


def test_latest_names_the_newest_finished_backup(backup_dir):
    from backups.services import backup_for_reference

    with pytest.raises(BackupError, match="no finished backup yet"):
        backup_for_reference("latest")
    older = Backup.objects.create(status=Backup.Status.VERIFIED, reason="test", engine="postgresql")
    Backup.objects.create(status=Backup.Status.RUNNING, reason="test", engine="postgresql")
    assert backup_for_reference("latest") == older
    assert backup_for_reference(str(older.pk)) == older
    for bad, message in (("nine", "not a backup id"), ("999999", "no backup with id")):
        with pytest.raises(BackupError, match=message):
            backup_for_reference(bad)


def _backups_in(settings: Any, backend: str, location: Path) -> None:
    settings.STORAGES = {**settings.STORAGES, "backups": {"BACKEND": backend, "OPTIONS": {"location": str(location)}}}


class ShortWritingStorage(Storage):
    """A remote-like storage (no local paths) whose writes lose their second half, as a full or
    failing disk behind it would."""

    def __init__(self, location: str) -> None:
        self.root = Path(location)
        self.root.mkdir(parents=True, exist_ok=True)

    def _save(self, name: str, content: Any) -> str:
        data = content.read()
        (self.root / name).write_bytes(data[: len(data) // 2])
        return name

    def _open(self, name: str, mode: str = "rb") -> File:
        return File((self.root / name).open(mode))

    def exists(self, name: str) -> bool:
        return (self.root / name).exists()

    def delete(self, name: str) -> None:
        (self.root / name).unlink(missing_ok=True)


def test_a_stored_file_that_differs_from_the_dump_fails_the_backup_and_is_removed(backup_dir, settings,
                                                                                  needs_postgres):  # fmt: skip
    _backups_in(settings, f"{__name__}.ShortWritingStorage", backup_dir / "files")
    with pytest.raises(BackupError, match="the stored file differs"):
        backup_create(reason="test")
    backup = Backup.objects.get()
    assert backup.status == Backup.Status.FAILED and "differs" in backup.error
    assert list((backup_dir / "files").glob("*")) == [], "the half-written file was left in storage"
    assert not partial_path(backup).exists()


def test_backups_go_into_a_directory_that_does_not_exist_yet(tmp_path, settings, needs_postgres):
    nested, store = tmp_path / "not" / "made" / "yet", tmp_path / "store" / "not" / "made" / "files"
    settings.OPSITE_BACKUP_DIR = nested
    _backups_in(settings, "django.core.files.storage.FileSystemStorage", store)
    for _ in range(2):  # the second finds the directories made by the first
        backup = backup_create(reason="test")
        assert backup.status == Backup.Status.SUCCEEDED and (store / backup.path).exists()


def test_the_backup_lock_outlives_the_longest_run(settings):
    from backups.models import BackupLock
    from backups.services import LOCK, job_lock

    settings.OPSITE_BACKUP_TIME_LIMIT_S = 3600
    with job_lock("test"):
        expires = BackupLock.objects.get(name=LOCK).expires_at
    assert expires >= timezone.now() + timedelta(seconds=3600)


def test_retention_keeps_a_backup_exactly_at_the_edge_of_the_window(backup_dir, settings):
    from backups.services import retention_apply

    settings.OPSITE_BACKUP_KEEP_DAYS = 7
    settings.OPSITE_BACKUP_KEEP_MIN = 1
    edge = _backup_row(Backup.Status.SUCCEEDED, 7, backup_dir)
    _backup_row(Backup.Status.VERIFIED, 1, backup_dir)
    assert retention_apply(now=edge.started_at + timedelta(days=7)) == []


def test_a_verification_names_at_most_five_tables_that_differ(make_staff, backup_dir, needs_postgres):
    backup = backup_create(reason="test")
    tables = sorted(backup.row_counts)[:7]
    backup.row_counts = {**backup.row_counts, **{t: backup.row_counts[t] + 1 for t in tables}}
    backup.save(update_fields=["row_counts"])
    with pytest.raises(BackupError) as failed:
        backup_verify(backup=backup)
    assert str(failed.value).count("in the manifest") == 5


class FullDiskStorage(ShortWritingStorage):
    def _save(self, name: str, content: Any) -> str:
        raise OSError(28, "No space left on device")


def test_any_failure_while_storing_is_a_backup_error_that_names_it(backup_dir, settings, needs_postgres):
    _backups_in(settings, f"{__name__}.FullDiskStorage", backup_dir / "files")
    with pytest.raises(BackupError, match="No space left on device"):
        backup_create(reason="test")
    assert Backup.objects.get().error.startswith("OSError")


def test_retention_looks_past_a_backup_it_must_keep(backup_dir, settings):
    settings.OPSITE_BACKUP_KEEP_DAYS = 7
    settings.OPSITE_BACKUP_KEEP_MIN = 1
    _backup_row(Backup.Status.SUCCEEDED, 20, backup_dir)  # newest, with no newer verified one: kept
    _backup_row(Backup.Status.VERIFIED, 30, backup_dir)  # the newest verified: kept
    oldest = _backup_row(Backup.Status.VERIFIED, 35, backup_dir)
    assert retention_apply() == [oldest.pk]


def test_the_reaper_fails_a_run_that_died_before_writing_anything(backup_dir):
    dead = Backup.objects.create(status=Backup.Status.RUNNING, reason="test", engine="postgresql")
    Backup.objects.filter(pk=dead.pk).update(started_at=timezone.now() - timedelta(days=1))
    assert reap_stale_runs() == [dead.pk]  # no partial file to remove: still reaped
    assert Backup.objects.get(pk=dead.pk).status == Backup.Status.FAILED


def test_retention_deletes_a_failed_backup_that_stored_no_file(backup_dir, settings):
    settings.OPSITE_BACKUP_KEEP_DAYS = 7
    failed = _backup_row(Backup.Status.FAILED, 30, backup_dir)
    Backup.objects.filter(pk=failed.pk).update(path="")
    _backup_row(Backup.Status.VERIFIED, 1, backup_dir)
    assert retention_apply() == [failed.pk]
    assert (backup_dir / "files").is_dir(), "the storage itself was deleted"


class ShortReadingStorage(FileSystemStorage):
    """A local disk that reads back less than was written to it."""

    def _open(self, name: str, mode: str = "rb") -> File:
        data = Path(self.path(name)).read_bytes()
        return File(io.BytesIO(data[: len(data) // 2]), name=name)


def test_a_local_file_that_reads_back_wrong_fails_the_backup_and_is_removed(backup_dir, settings,
                                                                             needs_postgres):  # fmt: skip
    _backups_in(settings, f"{__name__}.ShortReadingStorage", backup_dir / "files")
    with pytest.raises(BackupError, match="the stored file differs"):
        backup_create(reason="test")
    assert list((backup_dir / "files").glob("*")) == []
    assert not partial_path(Backup.objects.get()).exists()


def test_a_backup_verifies_on_a_machine_whose_backup_directory_is_new(backup_dir, tmp_path, settings,
                                                                       needs_postgres):  # fmt: skip
    backup = backup_create(reason="test")
    settings.OPSITE_BACKUP_DIR = tmp_path / "elsewhere" / "new"  # the same storage, another machine
    assert backup_verify(backup=backup).status == Backup.Status.VERIFIED


def test_retention_keeps_the_newest_verified_backup_even_when_told_to_keep_none(backup_dir, settings):
    settings.OPSITE_BACKUP_KEEP_DAYS = 1
    settings.OPSITE_BACKUP_KEEP_MIN = 0
    newest = _backup_row(Backup.Status.VERIFIED, 10, backup_dir)
    older = _backup_row(Backup.Status.VERIFIED, 20, backup_dir)
    assert retention_apply() == [older.pk]
    assert Backup.objects.filter(pk=newest.pk).exists()


def test_backup_runs_durations_and_sizes_are_cluster_wide_series(make_staff, needs_postgres):
    from common.series import shared, shared_families

    def figures() -> dict[tuple[str, str], float]:
        shared.flush()
        return {(s.name, s.labels.get("status", "")): s.value for family in shared_families() for s in family.samples
                if s.name.startswith("opsite_backup_")}  # fmt: skip

    before = figures()
    backup = backup_create(reason="test")
    after = figures()

    def grew(name: str) -> float:
        return after.get((name, "succeeded"), 0.0) - before.get((name, "succeeded"), 0.0)

    assert grew("opsite_backup_runs_total") == 1
    assert grew("opsite_backup_duration_seconds_count") == 1
    assert 0 < grew("opsite_backup_duration_seconds_sum") < 120
    assert grew("opsite_backup_size_bytes_sum") == backup.size_bytes
