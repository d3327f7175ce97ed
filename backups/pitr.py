"""Point-in-time recovery for PostgreSQL: base backups taken with pg_basebackup, the write-ahead
log archived continuously (pg_receivewal, or the server's archive_command), and a restore into a
new cluster at any moment the archive covers.

Everything a restore needs is in the backup storage itself: each base backup has a manifest
(``pitr/base/<name>.json``: its WAL range, timeline, checksum) beside its tar, and each WAL
segment is a zstd file with its sha256 (``pitr/wal/<segment>.zst`` and ``.sha256``). So a restore
works when the database that took the backups is the one that was lost.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import zstandard
from django.conf import settings
from django.core.files.base import ContentFile, File
from django.core.files.storage import Storage
from django.db import connections

from common.cache import invalidate, read_through

from .engines import CHUNK, BackupError, settings_conninfo
from .storage import HashingWriter, backup_storage, remote_call, storage_label

log = logging.getLogger(__name__)
BASE_DIR = "pitr/base"
WAL_DIR = "pitr/wal"
SEGMENT = re.compile(r"^[0-9A-F]{24}$")
Progress = Callable[[str], None]


def _quiet(_line: str) -> None:
    return None


# --- the server and its tools ------------------------------------------------------------------


def pg_tool(name: str) -> str:
    """A PostgreSQL program: on PATH, else in the newest /usr/lib/postgresql/<major>/bin (Debian
    keeps initdb, pg_ctl and pg_receivewal there)."""
    found = shutil.which(name)
    if found:
        return found
    for bin_dir in sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True):
        if (bin_dir / name).exists():
            return str(bin_dir / name)
    raise BackupError(f"{name} is not installed (Debian package postgresql-client or postgresql)")


def as_server_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run its server as root: run it as ``postgres`` when we are root."""
    if os.geteuid() == 0:
        return [shutil.which("runuser") or "/usr/sbin/runuser", "-u", "postgres", "--", *command]
    return command


def conninfo(*, dbname: str | None = None, **extra: str) -> str:
    """The configured database's connection string (another database, or replication, on request)."""
    s = connections["default"].settings_dict
    if not s["ENGINE"].endswith("postgresql"):
        raise BackupError("point-in-time recovery needs PostgreSQL; the embedded SQLite database keeps its dumps")
    return settings_conninfo(s, dbname=dbname, **extra)


def free_port() -> int:
    """A port nothing listens on now, for a restored cluster."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def segment_name(lsn: str, *, timeline: int, segment_size: int) -> str:
    """The WAL file holding ``lsn`` ("0/3000028"), as the server names it."""
    high, low = (int(part, 16) for part in lsn.split("/"))
    number = ((high << 32) | low) // segment_size
    per_xlogid = 0x100000000 // segment_size
    return f"{timeline:08X}{number // per_xlogid:08X}{number % per_xlogid:08X}"


def _position(segment: str) -> int:
    """A segment's place in the log, whatever its timeline (for ordering and retention)."""
    return int(segment[8:16], 16) << 32 | int(segment[16:24], 16)


# --- storing and fetching ----------------------------------------------------------------------


def _put(storage: Storage, name: str, source: Path) -> tuple[str, int]:
    """Compress ``source`` into the store as ``name`` with its sha256 beside it; a name already
    stored is left as it is (an archive is append-only: the same segment sent twice is one)."""
    if storage.exists(name) and storage.exists(name + ".sha256"):
        return _stored_sum(storage, name), storage.size(name)
    with tempfile.NamedTemporaryFile(dir=source.parent, prefix=".ship-", delete=False) as tmp:
        writer = HashingWriter(tmp)  # type: ignore[arg-type]
        compressor = zstandard.ZstdCompressor(level=settings.OPSITE_BACKUP_ZSTD_LEVEL, threads=-1)
        with source.open("rb") as raw, compressor.stream_writer(writer, closefd=False) as out:  # type: ignore[arg-type]
            shutil.copyfileobj(raw, out, CHUNK)
        tmp.flush()
        os.fsync(tmp.fileno())
    sha, size = writer.digest.hexdigest(), writer.size

    def upload() -> None:
        if storage.exists(name):
            storage.delete(name)
        with open(tmp.name, "rb") as compressed:
            storage.save(name, File(compressed, name=name))
        if storage.exists(name + ".sha256"):
            storage.delete(name + ".sha256")
        storage.save(name + ".sha256", ContentFile(f"{sha}  {Path(name).name}\n".encode()))

    try:
        remote_call(storage, upload)
    finally:
        os.unlink(tmp.name)
    return sha, size


def _stored_sum(storage: Storage, name: str) -> str:
    with storage.open(name + ".sha256", "rb") as handle:
        return str(handle.read().decode().split()[0])


def _get(storage: Storage, name: str, target: Path) -> None:
    """Fetch ``name``, check its sha256, and write it decompressed to ``target`` (atomically)."""
    expected = _stored_sum(storage, name)
    digest = hashlib.sha256()
    partial = target.with_name(target.name + ".fetching")
    with storage.open(name, "rb") as stored, partial.open("wb") as out:
        reader = zstandard.ZstdDecompressor().stream_writer(out, closefd=False)
        while chunk := stored.read(CHUNK):
            digest.update(chunk)
            reader.write(chunk)
        reader.flush()
    if digest.hexdigest() != expected:
        partial.unlink(missing_ok=True)
        raise BackupError(f"{name}: sha256 {digest.hexdigest()[:12]}… is not the archived {expected[:12]}…")
    os.replace(partial, target)


def _files(storage: Storage, folder: str) -> list[str]:
    """The files in a folder of the store (none while it does not exist yet)."""
    try:
        return list(storage.listdir(folder)[1])
    except FileNotFoundError:
        return []


def archived_segments(storage: Storage | None = None) -> list[str]:
    files = _files(storage or backup_storage(), WAL_DIR)
    names = {f.removesuffix(".zst") for f in files if f.endswith(".zst")}
    sums = {f.removesuffix(".zst.sha256") for f in files if f.endswith(".zst.sha256")}
    return sorted((n for n in names & sums if SEGMENT.match(n)), key=_position)


def archive_gaps(segments: list[str]) -> list[str]:
    """Segments missing between the first and the last archived one (a hole in the archive)."""
    if not segments:
        return []
    timeline = segments[0][:8]
    positions = sorted({_position(s) for s in segments})
    missing: list[str] = []
    for before, after in itertools.pairwise(positions):
        missing += [f"{timeline}{(p >> 32):08X}{(p & 0xFFFFFFFF):08X}" for p in range(before + 1, after)]
    return missing


def wal_push(path: Path, name: str) -> str:
    """Archive one finished segment (the server's ``archive_command``); return its sha256."""
    if not SEGMENT.match(name) and not name.endswith(".history"):
        raise BackupError(f"{name} is not a WAL segment or timeline history file")
    sha, _size = _put(backup_storage(), f"{WAL_DIR}/{name}.zst", path)
    return sha


# --- continuous archiving by pg_receivewal ------------------------------------------------------


@dataclass
class ReceiverState:
    shipped: int = 0
    last_shipped: str = ""
    restarts: int = 0


def ship_finished(spool: Path, state: ReceiverState, storage: Storage | None = None) -> list[str]:
    """Store every finished segment in the spool (not the ``.partial`` one being written), then
    remove it locally; the replication slot keeps the server from dropping what is not stored."""
    storage = storage or backup_storage()
    shipped = []
    for path in sorted(spool.iterdir(), key=lambda p: p.name):
        if not (SEGMENT.match(path.name) or path.name.endswith(".history")):
            continue
        _put(storage, f"{WAL_DIR}/{path.name}.zst", path)
        path.unlink()
        shipped.append(path.name)
        state.shipped += 1
        state.last_shipped = path.name
    return shipped


def wal_receive(*, spool: Path, synchronous: bool, stop: threading.Event, progress: Progress = _quiet) -> ReceiverState:
    """Run pg_receivewal into ``spool`` until ``stop`` is set, shipping each finished segment.

    It streams through a replication slot (created if missing), so WAL the archive has not got is
    kept by the server across restarts of this process; it is started again after it exits.
    With ``synchronous`` it reports each flush at once: with the server's
    ``synchronous_standby_names`` naming ``OPSITE_WAL_SLOT``, a commit returns only once its WAL
    is on this machine's disk (nothing acknowledged is lost with the server)."""
    spool.mkdir(parents=True, exist_ok=True)
    slot = settings.OPSITE_WAL_SLOT
    source = conninfo(dbname="postgres", application_name=slot)
    tool = pg_tool("pg_receivewal")
    subprocess.run([tool, "-D", str(spool), "-d", source, f"--slot={slot}", "--create-slot", "--if-not-exists"],  # noqa: S603
                   check=True, capture_output=True, timeout=30)  # fmt: skip
    state = ReceiverState()
    while not stop.is_set():
        command = [tool, "-D", str(spool), "-d", source, f"--slot={slot}", "--no-loop", "--compress=0",
                   *(["--synchronous"] if synchronous else ["--status-interval=1"])]  # fmt: skip
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # noqa: S603
        progress(f"pg_receivewal streaming into {spool} (pid {process.pid}{', synchronous' if synchronous else ''})")
        while process.poll() is None and not stop.is_set():
            for name in ship_finished(spool, state):
                progress(f"archived {name}")
            stop.wait(settings.OPSITE_WAL_SHIP_INTERVAL_S)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # it flushes what it has and exits
            process.wait(timeout=30)
        ship_finished(spool, state)
        if not stop.is_set():
            error = (process.stderr.read() if process.stderr else "").strip().splitlines()[-1:] or ["exited"]
            state.restarts += 1
            progress(f"pg_receivewal stopped ({error[0]}); starting it again in 2 s")
            stop.wait(2)
    return state


def wal_ship(*, spool: Path, stop: threading.Event, progress: Progress = _quiet) -> ReceiverState:
    """Ship the segments the server's own ``archive_command`` copies into ``spool`` (for servers
    archiving with ``archive_timeout`` rather than streaming to pg_receivewal), until ``stop``."""
    spool.mkdir(parents=True, exist_ok=True)
    state = ReceiverState()
    progress(f"shipping the segments the server archives into {spool}")
    while not stop.is_set():
        for name in ship_finished(spool, state):
            progress(f"archived {name}")
        stop.wait(settings.OPSITE_WAL_SHIP_INTERVAL_S)
    ship_finished(spool, state)
    return state


# --- base backups --------------------------------------------------------------------------------


@dataclass
class BaseBackup:
    name: str
    started_at: datetime
    finished_at: datetime
    timeline: int
    start_lsn: str
    end_lsn: str
    start_segment: str
    end_segment: str
    segment_size: int
    sha256: str
    size_bytes: int
    server_version: str

    def as_json(self) -> dict[str, Any]:
        data = self.__dict__.copy()
        data["started_at"] = self.started_at.isoformat()
        data["finished_at"] = self.finished_at.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BaseBackup:
        return cls(**{**data, "started_at": datetime.fromisoformat(data["started_at"]),
                      "finished_at": datetime.fromisoformat(data["finished_at"])})  # fmt: skip


def base_backup_create(*, progress: Progress = _quiet) -> BaseBackup:
    """Take a base backup with pg_basebackup (tar, no WAL: the archive has it), store it
    compressed with its sha256 and a manifest that says which WAL it needs."""
    from .services import job_lock  # one heavy backup job at a time, dumps and base backups alike

    conninfo()  # PostgreSQL only: says so before anything else
    with job_lock(f"{settings.OPSITE_NODE_NAME}:{os.getpid()}:base"):
        base = _base_backup(progress)
    _archive_changed()
    return base


def _base_backup(progress: Progress) -> BaseBackup:
    storage = backup_storage()
    started = datetime.now(UTC)
    with psycopg.connect(conninfo()) as conn:
        version_row = conn.execute("SHOW server_version").fetchone()
        size_row = conn.execute("SELECT setting::int * 1 FROM pg_settings WHERE name = 'wal_segment_size'").fetchone()
    segment_size = int(size_row[0]) if size_row else 16 << 20
    work = Path(settings.OPSITE_BACKUP_DIR) / "partial"
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work, prefix="base-") as tmp:
        command = [pg_tool("pg_basebackup"), "-d", conninfo(), "-D", tmp, "--format=tar", "--wal-method=none",
                   "--checkpoint=fast", "--manifest-checksums=SHA256", "--no-sync"]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=settings.OPSITE_BACKUP_TIME_LIMIT_S)  # noqa: S603
        if done.returncode != 0:
            raise BackupError(f"pg_basebackup failed (exit {done.returncode}): {done.stderr.strip()[-400:]}")
        manifest = json.loads((Path(tmp) / "backup_manifest").read_text())
        wal = manifest["WAL-Ranges"][0]
        finished = datetime.now(UTC)
        timeline = int(wal["Timeline"])
        start = segment_name(wal["Start-LSN"], timeline=timeline, segment_size=segment_size)
        name = f"{started:%Y%m%dT%H%M%S}-{start}"
        progress(f"pg_basebackup done in {(finished - started).total_seconds():.1f} s; WAL from {start}")
        tar = Path(tmp) / "base.tar"
        # the server's own manifest goes inside, so pg_verifybackup can check the restored copy
        with tarfile.open(tar, "a") as archive:
            archive.add(Path(tmp) / "backup_manifest", arcname="backup_manifest")
        sha, size = _put(storage, f"{BASE_DIR}/{name}.tar.zst", tar)
    base = BaseBackup(
        name=name, started_at=started, finished_at=finished, timeline=timeline, start_lsn=wal["Start-LSN"],
        end_lsn=wal["End-LSN"], start_segment=start,
        end_segment=segment_name(wal["End-LSN"], timeline=timeline, segment_size=segment_size),
        segment_size=segment_size, sha256=sha, size_bytes=size,
        server_version=str(version_row[0] if version_row else ""),
    )  # fmt: skip
    remote_call(storage, lambda: storage.save(f"{BASE_DIR}/{name}.json",
                                              ContentFile(json.dumps(base.as_json(), indent=1).encode())))  # fmt: skip
    return base


def base_backups(storage: Storage | None = None) -> list[BaseBackup]:
    """Every stored base backup, oldest first."""
    storage = storage or backup_storage()
    found = []
    for manifest in sorted(f for f in _files(storage, BASE_DIR) if f.endswith(".json")):
        with storage.open(f"{BASE_DIR}/{manifest}", "rb") as handle:
            found.append(BaseBackup.from_json(json.loads(handle.read())))
    return sorted(found, key=lambda b: b.finished_at)


def pitr_prune(*, keep: int | None = None) -> tuple[list[str], list[str]]:
    """Keep the newest ``keep`` base backups and every WAL segment the oldest of them needs;
    remove the rest. Returns the base backups and segments removed."""
    keep = keep or settings.OPSITE_PITR_KEEP_BASE
    storage = backup_storage()
    bases = base_backups(storage)
    if not bases:
        return [], []
    dropped = bases[:-keep] if len(bases) > keep else []
    for base in dropped:
        for suffix in (".tar.zst", ".tar.zst.sha256", ".json"):
            if storage.exists(f"{BASE_DIR}/{base.name}{suffix}"):
                storage.delete(f"{BASE_DIR}/{base.name}{suffix}")
    oldest_needed = _position(bases[len(dropped)].start_segment)
    removed = [s for s in archived_segments(storage) if _position(s) < oldest_needed]
    for segment in removed:
        storage.delete(f"{WAL_DIR}/{segment}.zst")
        storage.delete(f"{WAL_DIR}/{segment}.zst.sha256")
    _archive_changed()
    return [b.name for b in dropped], removed


@dataclass
class ArchiveReport:
    bases: list[BaseBackup]
    segments: list[str]
    gaps: list[str]
    newest_segment_at: datetime | None  # when the newest archived segment was stored

    @property
    def restorable(self) -> bool:
        return bool(self.bases) and not self.gaps


def archive_report() -> ArchiveReport:
    """What the archive holds: base backups, WAL segments from the oldest base on, any gap, and
    when the newest segment arrived (how far a restore reaches without the receiver's spool)."""
    storage = backup_storage()
    bases = base_backups(storage)
    segments = archived_segments(storage)
    if bases:
        segments = [s for s in segments if _position(s) >= _position(bases[0].start_segment)]
    newest = storage.get_modified_time(f"{WAL_DIR}/{segments[-1]}.zst") if segments else None
    return ArchiveReport(bases=bases, segments=segments, gaps=archive_gaps(segments), newest_segment_at=newest)


def archiver_lag_s() -> float | None:
    """How far the WAL archiver's flush trails the server, in seconds: None when no archiver slot
    exists (point-in-time recovery not set up, or the server archives by archive_command), and
    ``math.inf`` when the slot exists but nothing streams from it (the archiver is down)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.active, EXTRACT(epoch FROM r.flush_lag) FROM pg_replication_slots s "
            "LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid WHERE s.slot_name = %s",
            [settings.OPSITE_WAL_SLOT],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    active, lag = row
    return float(lag or 0.0) if active else math.inf


ARCHIVE_CACHE = "pitr-archive"
ARCHIVE_CACHE_S = 60


def archive_report_cached() -> ArchiveReport:
    """The archive's report as of at most a minute ago: the alert evaluation (every 15 s) and the
    dashboard read it, and making it lists the store and reads every base backup's manifest."""
    where = storage_label(backup_storage())
    return read_through(ARCHIVE_CACHE, (where,), archive_report, timeout=ARCHIVE_CACHE_S)


def _archive_changed() -> None:
    invalidate(ARCHIVE_CACHE, storage_label(backup_storage()))


# --- restore to a point in time ------------------------------------------------------------------


@dataclass
class Restored:
    base: BaseBackup
    data_dir: Path
    port: int
    segments: int
    seconds: float
    replayed_to: datetime | None

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"


def choose_base(bases: list[BaseBackup], target: datetime | None) -> BaseBackup:
    usable = [b for b in bases if target is None or b.finished_at <= target]
    if not usable:
        oldest = f" (the oldest finished at {bases[0].finished_at:%Y-%m-%d %H:%M:%S} UTC)" if bases else ""
        raise BackupError(f"no base backup finished before {target:%Y-%m-%d %H:%M:%S} UTC{oldest}" if target
                          else "no base backup is stored yet: run `manage.py backup --base` first")  # fmt: skip
    return usable[-1]


def _extract(storage: Storage, base: BaseBackup, into: Path) -> None:
    """Stream the base backup out of the store into ``into``: checked, decompressed, untarred."""
    name = f"{BASE_DIR}/{base.name}.tar.zst"
    digest = hashlib.sha256()

    class Checked:
        def __init__(self, source: Any) -> None:
            self.source = source

        def read(self, size: int = -1) -> bytes:
            data = self.source.read(size)
            digest.update(data)
            return data

    with storage.open(name, "rb") as stored:
        reader = zstandard.ZstdDecompressor().stream_reader(Checked(stored))  # type: ignore[arg-type]
        with tarfile.open(fileobj=reader, mode="r|") as archive:
            archive.extractall(into, filter="data")
        while Checked(stored).read(CHUNK):  # the rest of the object counts towards its checksum
            pass
    if digest.hexdigest() != base.sha256:
        raise BackupError(f"base backup {base.name}: sha256 does not match its manifest; not restoring from it")


def restore_to_point(*, into: Path, target: datetime | None, port: int, spool: Path | None = None,
                     replace: bool = False, progress: Progress = _quiet) -> Restored:  # fmt: skip
    """A new cluster in ``into``, started on ``port``, holding the database as it was at ``target``
    (or as late as the archive, and the spool's unfinished segment, reach)."""
    began = time.monotonic()
    storage = backup_storage()
    base = choose_base(base_backups(storage), target)
    if into.exists() and any(into.iterdir()):
        if (into / "postmaster.pid").exists():
            raise BackupError(f"{into} holds a running cluster (postmaster.pid); stop it or choose another directory")
        if not replace:
            raise BackupError(f"{into} is not empty; pass --yes to replace an earlier restore there")
        if not (into / "pitr_wal").is_dir():  # never delete a directory this did not make (a live data dir)
            raise BackupError(f"{into} was not made by a restore (no pitr_wal/ in it); not replacing it")
        shutil.rmtree(into)
    into.mkdir(parents=True, exist_ok=True)
    progress(f"base backup {base.name} ({base.size_bytes / 2**20:.1f} MiB compressed, finished "
             f"{base.finished_at:%Y-%m-%d %H:%M:%S} UTC)")  # fmt: skip
    _extract(storage, base, into)
    wal_dir = into / "pitr_wal"
    wal_dir.mkdir()
    # The spool first, then the archive: a segment the archiver ships meanwhile is stored before
    # it leaves the spool, so it is found in one or the other; an archived copy of a segment
    # supersedes the unfinished one taken from the spool.
    from_spool = _take_spool(spool, wal_dir, progress) if spool is not None else set()
    needed = [s for s in archived_segments(storage) if _position(s) >= _position(base.start_segment)]
    fetch = [s for s in needed if s in from_spool or not (wal_dir / s).exists()]
    for n, segment in enumerate(fetch, 1):
        _get(storage, f"{WAL_DIR}/{segment}.zst", wal_dir / segment)
        if n % 20 == 0 or n == len(fetch):
            progress(f"fetched {n} of {len(fetch)} WAL segments")
    if spool is not None:
        _take_spool(spool, wal_dir, progress)  # one renamed while the archive was listed
    missing = archive_gaps([*needed, *(p.name for p in wal_dir.iterdir())])
    if missing:
        progress(f"warning: the archive has a gap ({missing[0]}…); recovery stops before it")
    _write_recovery(into, port=port, target=target)
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", "postgres:postgres", str(into)], check=True)  # noqa: S603, S607
    into.chmod(0o700)
    log_file = into / "restore.log"
    start = subprocess.run(as_server_user([pg_tool("pg_ctl"), "-D", str(into), "-l", str(log_file), "-w",  # noqa: S603
                                           "-t", str(int(settings.OPSITE_BACKUP_TIME_LIMIT_S)), "start"]),
                           capture_output=True, text=True)  # fmt: skip
    if start.returncode != 0:
        tail = log_file.read_text(errors="replace").strip().splitlines()[-3:] if log_file.exists() else []
        raise BackupError(f"the restored cluster did not start: {start.stderr.strip()} {' | '.join(tail)}")
    replayed = _wait_promoted(port, progress)
    return Restored(base=base, data_dir=into, port=port, segments=len(list(wal_dir.iterdir())),
                    seconds=time.monotonic() - began, replayed_to=replayed)  # fmt: skip


def _take_spool(spool: Path, wal_dir: Path, progress: Progress) -> set[str]:
    """Copy what the archiver has not shipped yet (its unfinished segment too) into ``wal_dir``;
    the names of the segments taken from ``.partial`` files."""
    partial: set[str] = set()
    if not spool.is_dir():
        return partial
    for path in sorted(spool.iterdir()):
        segment = path.name.removesuffix(".partial")
        if not SEGMENT.match(segment) or (wal_dir / segment).exists():
            continue
        try:
            shutil.copyfile(path, wal_dir / segment)
        except FileNotFoundError:  # shipped or renamed just now: the archive or the next pass has it
            continue
        if path.name.endswith(".partial"):
            partial.add(segment)
        progress(f"took {path.name} from the spool")
    return partial


def _write_recovery(into: Path, *, port: int, target: datetime | None) -> None:
    lines = [
        f"port = {port}", "listen_addresses = '127.0.0.1'", f"unix_socket_directories = '{into}'",
        f"restore_command = 'cp \"{into / 'pitr_wal'}/%f\" \"%p\"'", "recovery_target_action = 'promote'",
        "recovery_target_timeline = 'latest'", "synchronous_standby_names = ''", "archive_mode = off",
    ]  # fmt: skip
    if target is not None:
        lines.append(f"recovery_target_time = '{target.astimezone(UTC):%Y-%m-%d %H:%M:%S.%f+00}'")
    with (into / "postgresql.auto.conf").open("a") as conf:
        conf.write("\n# point-in-time restore\n" + "\n".join(lines) + "\n")
    (into / "recovery.signal").touch()
    (into / "standby.signal").unlink(missing_ok=True)


def _wait_promoted(port: int, progress: Progress) -> datetime | None:
    deadline = time.monotonic() + settings.OPSITE_BACKUP_TIME_LIMIT_S
    replayed: datetime | None = None
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres", connect_timeout=5) as c:
                row = c.execute("SELECT pg_is_in_recovery(), pg_last_xact_replay_timestamp()").fetchone()
        except psycopg.OperationalError:
            time.sleep(0.2)
            continue
        assert row is not None
        replayed = row[1] or replayed
        if not row[0]:
            progress("recovery finished; the cluster is promoted and accepts writes")
            return replayed
        time.sleep(0.2)
    raise BackupError("recovery did not finish in OPSITE_BACKUP_TIME_LIMIT_S")


def stop_cluster(data_dir: Path) -> None:
    subprocess.run(as_server_user([pg_tool("pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "stop"]),  # noqa: S603
                   capture_output=True, timeout=60)  # fmt: skip


# --- what a restore must show ----------------------------------------------------------------------


def business_checks(dsn: str) -> dict[str, Any]:
    """The application's own invariants in a restored database: every restaurant's order events
    numbered 1..N without a gap, rows per table, and the applied migrations."""
    with psycopg.connect(dsn) as conn:
        gaps = conn.execute(
            "SELECT r.slug, count(e.id), coalesce(max(e.seq), 0) FROM realtime_restaurant r "
            "LEFT JOIN realtime_orderevent e ON e.restaurant_id = r.id GROUP BY r.slug ORDER BY r.slug"
        ).fetchall()
        tables = conn.execute("SELECT relname, n_live_tup FROM pg_stat_user_tables ORDER BY relname").fetchall()
        migrations = conn.execute("SELECT count(*) FROM django_migrations").fetchone()
    return {
        "restaurants": {slug: {"events": n, "last_seq": last, "gap_free": n == last} for slug, n, last in gaps},
        "tables": dict(tables),
        "migrations": int(migrations[0]) if migrations else 0,
    }
