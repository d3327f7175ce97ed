"""Backups: create (dump, compress, checksum, store), verify (by restore), restore, retention,
and the reaper for runs that died. One heavy job at a time, guarded by a lock with an expiry."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import environ
import zstandard
from django.conf import settings
from django.core.files import File
from django.db import connections
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from .engines import CHUNK, BackupError, Engine, engine_for
from .models import Backup, BackupLock
from .series import backup_observe
from .signals import backup_finished
from .storage import HashingWriter, backup_storage, local_path, remote_call, storage_label, stored_sha256

log = logging.getLogger(__name__)
LOCK = "backups"
EXTENSIONS = {"postgresql": "pgdump", "sqlite": "sqlite3"}


# How figures are shown, not what they are: not mutated.
SECONDS_DIGITS = 3  # pragma: no mutate
ANNOUNCED_ERROR_CHARS = 200  # pragma: no mutate


def _seconds(elapsed: float) -> float:
    return round(elapsed, SECONDS_DIGITS)


def _lock_ttl() -> timedelta:
    return timedelta(seconds=settings.OPSITE_BACKUP_TIME_LIMIT_S + 600)


@contextmanager
def job_lock(holder: str) -> Iterator[None]:
    """Hold the backup lock, or raise BackupError if another job holds it and it has not expired."""
    ttl = _lock_ttl()
    now = timezone.now()
    BackupLock.objects.get_or_create(name=LOCK, defaults={"expires_at": now - timedelta(seconds=1)})
    taken = BackupLock.objects.filter(name=LOCK, expires_at__lt=now).update(holder=holder, expires_at=now + ttl)
    if not taken:
        current = BackupLock.objects.get(name=LOCK)
        raise BackupError(
            f"another backup job is running ({current.holder}, claim until {current.expires_at:%H:%M:%S})"
        )
    try:
        yield
    finally:
        BackupLock.objects.filter(name=LOCK, holder=holder).update(expires_at=timezone.now())


def _engine() -> Engine:
    return engine_for(connections["default"].settings_dict)


def _latest_migrations() -> dict[str, str]:
    latest: dict[str, str] = {}
    for app, name in MigrationRecorder.Migration.objects.order_by("applied", "id").values_list("app", "name"):
        latest[app] = name
    return latest


def partial_path(backup: Backup) -> Path:
    """Where a run writes before the file is complete; the reaper removes what a dead run left."""
    return Path(settings.OPSITE_BACKUP_DIR) / "partial" / f"backup-{backup.pk}.partial"


def _dump_to(path: Path, engine: Engine) -> tuple[dict[str, int], str, int]:
    compressor = zstandard.ZstdCompressor(
        level=settings.OPSITE_BACKUP_ZSTD_LEVEL, threads=settings.OPSITE_BACKUP_ZSTD_THREADS
    )
    with path.open("wb") as raw:
        writer = HashingWriter(raw)
        with compressor.stream_writer(writer, closefd=False, write_size=CHUNK) as compressed:  # type: ignore[arg-type]
            counts = engine.dump(compressed)
        raw.flush()
        os.fsync(raw.fileno())
    return counts, writer.digest.hexdigest(), writer.size


def backup_create(*, reason: str) -> Backup:
    """Dump the database, compress and checksum it on the way, store it; return the record.

    Raises BackupError, with the record marked failed and no file left behind, when anything fails.
    """
    engine = _engine()
    holder = f"{settings.OPSITE_NODE_NAME}:{os.getpid()}:create"
    with job_lock(holder):
        server_version, tool_version = engine.versions()
        backup = Backup.objects.create(
            reason=reason, engine=engine.name, format=engine.format, compression="zstd",
            server_version=server_version, tool_version=tool_version, migrations=_latest_migrations(),
            node=settings.OPSITE_NODE_NAME,
        )  # fmt: skip
        partial = partial_path(backup)
        partial.parent.mkdir(parents=True, exist_ok=True)
        storage = backup_storage()
        name = f"opsite-{engine.name}-{backup.started_at:%Y%m%dT%H%M%S}-{backup.pk}.{EXTENSIONS[engine.name]}.zst"
        stored_name = ""
        try:
            started = time.monotonic()
            counts, sha256, size = _dump_to(partial, engine)
            dumped = time.monotonic()
            stored_name = _store(storage, name, partial)
            stored_hash, stored_size = stored_sha256(storage, stored_name)
            if (stored_hash, stored_size) != (sha256, size):
                raise BackupError(f"the stored file differs from what was written ({stored_hash} != {sha256})")
        except Exception as exc:
            partial.unlink(missing_ok=True)
            if stored_name:
                storage.delete(stored_name)
            Backup.objects.filter(pk=backup.pk).update(
                status=Backup.Status.FAILED, finished_at=timezone.now(), error=f"{type(exc).__name__}: {exc}"
            )
            log.error("backup %s failed: %s", backup.pk, exc)
            _announce(backup.pk)
            if isinstance(exc, BackupError):
                raise
            raise BackupError(str(exc)) from exc
        partial.unlink(missing_ok=True)
        Backup.objects.filter(pk=backup.pk, status=Backup.Status.RUNNING).update(
            status=Backup.Status.SUCCEEDED, finished_at=timezone.now(), size_bytes=size, sha256=sha256,
            storage=storage_label(storage), path=stored_name, row_counts=counts,
            dump_seconds=_seconds(dumped - started), upload_seconds=_seconds(time.monotonic() - dumped),
        )  # fmt: skip
    _announce(backup.pk)
    backup.refresh_from_db()
    return backup


def _announce(backup_id: int) -> None:
    backup = Backup.objects.get(pk=backup_id)
    backup_observe(backup)
    error = backup.error[:ANNOUNCED_ERROR_CHARS]
    backup_finished.send(sender=Backup, frame={"type": "backup.finished", "id": backup.pk, "status": backup.status,
                                               "size_bytes": backup.size_bytes, "error": error})  # fmt: skip


def _store(storage: Any, name: str, partial: Path) -> str:
    target = local_path(storage, name)
    if target is not None and not storage.exists(name):
        # Same filesystem: an atomic rename, never a half-written file under the final name.
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(partial, target)
        return name

    def upload() -> str:
        with partial.open("rb") as source:
            return str(storage.save(name, File(source, name=name)))

    return remote_call(storage, upload)


@contextmanager
def fetched_dump(backup: Backup) -> Iterator[Path]:
    """The backup's dump, checksum-checked and decompressed into a temporary file."""
    if not backup.path:
        raise BackupError(f"backup {backup.pk} has no stored file")
    storage = backup_storage()
    if not storage.exists(backup.path):
        raise BackupError(f"backup {backup.pk}: {backup.path} is missing from {backup.storage}")
    work = Path(settings.OPSITE_BACKUP_DIR) / "partial"
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work, prefix=f"restore-{backup.pk}-") as tmp:
        dump = Path(tmp) / "dump"
        digest = hashlib.sha256()
        decompressor = zstandard.ZstdDecompressor()
        local = local_path(storage, backup.path)
        # A local file is hashed by a second reader while it is decompressed (both release the
        # GIL), so checking costs no time of its own; a remote object is hashed as it streams.
        hasher = threading.Thread(target=_hash_file, args=(local, digest)) if local is not None else None
        if hasher is not None:
            hasher.start()
        try:
            with storage.open(backup.path, "rb") as stored, dump.open("wb") as out:
                source = stored if hasher is not None else _HashingReader(stored, digest)
                decompressor.copy_stream(source, out, read_size=4 * CHUNK, write_size=4 * CHUNK)  # type: ignore[arg-type]
        except zstandard.ZstdError as exc:
            raise BackupError(f"backup {backup.pk} is corrupt: {exc}") from exc
        finally:
            if hasher is not None:
                hasher.join()
        if digest.hexdigest() != backup.sha256:
            raise BackupError(
                f"backup {backup.pk} checksum mismatch: stored file {digest.hexdigest()}, manifest {backup.sha256}"
            )
        yield dump


def _hash_file(path: Path, digest: Any) -> None:
    with path.open("rb") as source:
        while chunk := source.read(4 * CHUNK):
            digest.update(chunk)


class _HashingReader:
    def __init__(self, source: Any, digest: Any) -> None:
        self.source, self.digest = source, digest

    def read(self, size: int = -1) -> bytes:
        data: bytes = self.source.read(size)
        self.digest.update(data)
        return data


def backup_verify(*, backup: Backup, progress: Callable[[str], None] | None = None) -> Backup:
    """Checksum, restore into a scratch database, compare row counts; record the outcome."""
    if backup.status not in (Backup.Status.SUCCEEDED, Backup.Status.VERIFIED, Backup.Status.VERIFY_FAILED):
        raise BackupError(f"backup {backup.pk} is {backup.status}: only finished backups can be verified")
    engine = _engine()
    if backup.engine != engine.name:
        raise BackupError(f"backup {backup.pk} is a {backup.engine} backup; this database is {engine.name}")
    report = progress or (lambda _line: None)
    holder = f"{settings.OPSITE_NODE_NAME}:{os.getpid()}:verify"
    started = time.monotonic()
    with job_lock(holder):
        try:
            with fetched_dump(backup) as dump, engine.scratch() as scratch:
                scratch.restore(dump, jobs=settings.OPSITE_RESTORE_JOBS, progress=report)
                restored = scratch.row_counts(list(backup.row_counts))
            wrong = {t: (n, restored.get(t)) for t, n in backup.row_counts.items() if restored.get(t) != n}
            if wrong:
                shown = ", ".join(
                    f"{t}: {want} in the manifest, {got} restored" for t, (want, got) in list(wrong.items())[:5]
                )
                raise BackupError(f"row counts differ after restore: {shown}")
        except Exception as exc:
            Backup.objects.filter(pk=backup.pk).update(
                status=Backup.Status.VERIFY_FAILED, verified_at=timezone.now(), error=f"verification: {exc}",
                verify_seconds=_seconds(time.monotonic() - started),
            )  # fmt: skip
            backup.refresh_from_db()
            if isinstance(exc, BackupError):
                raise
            raise BackupError(str(exc)) from exc
    Backup.objects.filter(pk=backup.pk).update(
        status=Backup.Status.VERIFIED, verified_at=timezone.now(), error="",
        verify_seconds=_seconds(time.monotonic() - started),
    )  # fmt: skip
    backup.refresh_from_db()
    return backup


def backup_restore(*, backup: Backup, database_url: str | None, progress: Callable[[str], None]) -> None:
    """Restore a backup over a database (the configured one unless a URL is given)."""
    target_settings = (
        environ.Env.db_url_config(database_url) if database_url else dict(connections["default"].settings_dict)
    )
    target = engine_for(target_settings)
    if backup.engine != target.name:
        raise BackupError(f"backup {backup.pk} is a {backup.engine} backup; the target is {target.name}")
    if backup.status in (Backup.Status.RUNNING, Backup.Status.FAILED):
        raise BackupError(f"backup {backup.pk} is {backup.status} and cannot be restored")
    progress(f"checking and unpacking backup {backup.pk} ({backup.size_bytes or 0} bytes)")  # pragma: no mutate
    with fetched_dump(backup) as dump:
        progress("restoring")
        target.restore(dump, jobs=settings.OPSITE_RESTORE_JOBS, progress=progress)
    progress("done")


def backup_for_reference(ref: str) -> Backup:
    """A backup by id, or ``latest`` (the newest finished one)."""
    if ref == "latest":
        backup = Backup.objects.exclude(status__in=[Backup.Status.RUNNING, Backup.Status.FAILED]).first()
        if backup is None:
            raise BackupError("there is no finished backup yet")
        return backup
    if not ref.isdigit():
        raise BackupError(f"{ref!r} is not a backup id or 'latest'")
    found = Backup.objects.filter(pk=int(ref)).first()
    if found is None:
        raise BackupError(f"no backup with id {ref}")
    return found


def retention_apply(*, now: datetime | None = None) -> list[int]:
    """Delete backups past the window, keeping the newest ``KEEP_MIN`` verified ones and never
    deleting one unless a newer verified backup exists. Return the ids deleted."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.OPSITE_BACKUP_KEEP_DAYS)
    finished = list(Backup.objects.exclude(status=Backup.Status.RUNNING).order_by("-started_at"))
    verified = [b for b in finished if b.status == Backup.Status.VERIFIED]
    protected = {b.pk for b in verified[: settings.OPSITE_BACKUP_KEEP_MIN]}
    storage = backup_storage()
    deleted: list[int] = []
    for backup in finished:
        if backup.pk in protected or backup.started_at >= cutoff:
            continue
        if not any(v.started_at > backup.started_at for v in verified):
            continue
        if backup.path and storage.exists(backup.path):
            storage.delete(backup.path)
        deleted.append(backup.pk)
        backup.delete()
    return deleted


def reap_stale_runs(*, now: datetime | None = None) -> list[int]:
    """Mark runs still 'running' past the time limit as failed and remove what they left."""
    now = now or timezone.now()
    limit = timedelta(seconds=settings.OPSITE_BACKUP_TIME_LIMIT_S)
    reaped: list[int] = []
    for backup in Backup.objects.filter(status=Backup.Status.RUNNING, started_at__lt=now - limit):
        changed = Backup.objects.filter(pk=backup.pk, status=Backup.Status.RUNNING).update(
            status=Backup.Status.FAILED, finished_at=now,
            error=f"reaped: still running {limit} after it started (the worker died or was killed)",
        )  # fmt: skip
        if changed:
            partial_path(backup).unlink(missing_ok=True)
            # The dead run claimed the lock just before its row was created, and nothing could
            # claim it since: a claim no newer than that is the dead run's, so free it now.
            BackupLock.objects.filter(name=LOCK, expires_at__lte=backup.started_at + _lock_ttl()).update(
                expires_at=timezone.now()
            )
            reaped.append(backup.pk)
    # A verification killed mid-restore leaves its scratch database behind.
    dropped = _engine().scratch_reap(started_before=(now - limit).timestamp())
    if dropped:  # pragma: no mutate (a log line)
        log.warning("dropped scratch databases left by a dead verification: %s", ", ".join(dropped))
    return reaped
