"""How each database engine is dumped, restored and counted. One small interface, two engines.

Dumps are streamed: the engine writes raw dump bytes to a binary writer (which compresses and
hashes on the way to disk), so memory stays flat whatever the database size.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import psycopg
from psycopg import sql

CHUNK = 1 << 20


class BackupError(Exception):
    """A backup, verification or restore that cannot go on; the message says why."""


class Engine(Protocol):
    name: str
    format: str

    def versions(self) -> tuple[str, str]: ...

    def dump(self, out: BinaryIO) -> dict[str, int]:
        """Write the dump to ``out``; return row counts per table at the dump's snapshot."""
        ...

    def restore(self, dump_file: Path, *, jobs: int, progress: Callable[[str], None]) -> None: ...

    @contextmanager
    def scratch(self) -> Iterator[Engine]:
        """An engine for a new empty database, dropped afterwards."""
        ...

    def row_counts(self, tables: list[str]) -> dict[str, int]: ...

    def scratch_reap(self, *, started_before: float) -> list[str]:
        """Remove scratch databases made before that time (epoch seconds) by a verification whose
        process died before it could drop them; return their names."""
        ...


SCRATCH_PREFIX = "opsite_verify_"


def _scratch_name() -> str:
    """The scratch database's name carries its creation time, so the reaper can tell it is stale."""
    return f"{SCRATCH_PREFIX}{int(time.time())}_{uuid.uuid4().hex[:8]}"


def _scratch_started(name: str) -> int | None:
    stamp = name.removeprefix(SCRATCH_PREFIX).split("_", 1)[0]
    return int(stamp) if stamp.isdigit() and len(stamp) >= 10 else None


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"{name} is not installed or not on PATH (Debian package postgresql-client)")
    return path


def settings_conninfo(settings: dict[str, Any], *, dbname: str | None = None, **extra: str) -> str:
    """A libpq connection string for a Django database's settings (another database, or extra
    parameters such as ``application_name``, on request)."""
    parts = {
        "host": settings.get("HOST") or "", "port": str(settings.get("PORT") or ""), "user": settings.get("USER") or "",
        "password": settings.get("PASSWORD") or "", "dbname": dbname or settings["NAME"], **extra,
    }  # fmt: skip
    return psycopg.conninfo.make_conninfo(**{k: v for k, v in parts.items() if v})


class PostgresEngine:
    name = "postgresql"
    format = "pg_dump custom"

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings

    def _conninfo(self, dbname: str | None = None) -> str:
        return settings_conninfo(self.settings, dbname=dbname)

    def versions(self) -> tuple[str, str]:
        with psycopg.connect(self._conninfo()) as conn:
            server = conn.execute("SHOW server_version").fetchone()
        tool = subprocess.run([_tool("pg_dump"), "--version"], capture_output=True, text=True, check=True)  # noqa: S603
        return (str(server[0]) if server else ""), tool.stdout.strip()

    def _tables(self, conn: psycopg.Connection[Any]) -> list[str]:
        rows = conn.execute(
            "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
        ).fetchall()
        return [r[0] for r in rows]

    def dump(self, out: BinaryIO) -> dict[str, int]:
        # Count rows inside the very snapshot pg_dump uses, so the manifest matches the dump
        # exactly even while the application keeps writing.
        with psycopg.connect(self._conninfo(), autocommit=False) as conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            snapshot_row = conn.execute("SELECT pg_export_snapshot()").fetchone()
            assert snapshot_row is not None
            snapshot = str(snapshot_row[0])
            command = [_tool("pg_dump"), "--format=custom", "--compress=0", "--no-owner",
                       f"--snapshot={snapshot}", f"--dbname={self._conninfo()}"]  # fmt: skip
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # noqa: S603
            assert process.stdout is not None and process.stderr is not None
            try:
                while chunk := process.stdout.read(CHUNK):
                    out.write(chunk)
            finally:
                process.stdout.close()
                stderr = process.stderr.read().decode(errors="replace")
                code = process.wait()
            if code != 0:
                raise BackupError(f"pg_dump failed (exit {code}): {stderr.strip()[-500:]}")
            counts = {t: self._count(conn, t) for t in self._tables(conn)}
            conn.rollback()
        return counts

    @staticmethod
    def _count(conn: psycopg.Connection[Any], table: str) -> int:
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.SQL(table))).fetchone()
        return int(row[0]) if row else 0

    def restore(self, dump_file: Path, *, jobs: int, progress: Callable[[str], None]) -> None:
        command = [_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--exit-on-error", "--verbose",
                   f"--jobs={jobs}", f"--dbname={self._conninfo()}", str(dump_file)]  # fmt: skip
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # noqa: S603
        assert process.stderr is not None
        tail: list[str] = []
        for line in process.stderr:
            line = line.rstrip()
            tail = [*tail[-20:], line]
            if "processing item" in line or "creating TABLE" in line or "finished item" in line:
                progress(line.removeprefix("pg_restore: "))
        if process.wait() != 0:
            raise BackupError("pg_restore failed: " + " | ".join(tail[-5:]))

    @contextmanager
    def scratch(self) -> Iterator[Engine]:
        name = _scratch_name()
        admin_info = self._conninfo("postgres")
        with psycopg.connect(admin_info, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield PostgresEngine({**self.settings, "NAME": name})
        finally:
            with psycopg.connect(admin_info, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def scratch_reap(self, *, started_before: float) -> list[str]:
        with psycopg.connect(self._conninfo("postgres"), autocommit=True) as admin:
            names = [r[0] for r in admin.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s)",
                                                 [SCRATCH_PREFIX])]  # fmt: skip
            stale = [n for n in names if (started := _scratch_started(n)) is not None and started < started_before]
            for name in stale:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        return stale

    def row_counts(self, tables: list[str]) -> dict[str, int]:
        with psycopg.connect(self._conninfo()) as conn:
            present = set(self._tables(conn))
            return {t: self._count(conn, t) if t in present else -1 for t in tables}


class SqliteEngine:
    name = "sqlite"
    format = "sqlite file"

    def __init__(self, settings: dict[str, Any]) -> None:
        self.path = Path(settings["NAME"])

    def versions(self) -> tuple[str, str]:
        return sqlite3.sqlite_version, f"sqlite3 online backup API {sqlite3.sqlite_version}"

    @staticmethod
    def _tables(conn: sqlite3.Connection) -> list[str]:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY 1")
        return [r[0] for r in rows]

    @staticmethod
    def _counts(conn: sqlite3.Connection, tables: list[str]) -> dict[str, int]:
        present = set(SqliteEngine._tables(conn))
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] if t in present else -1 for t in tables}  # noqa: S608

    def dump(self, out: BinaryIO) -> dict[str, int]:
        # The online backup API copies a consistent snapshot while others keep writing.
        with tempfile.TemporaryDirectory(dir=self.path.parent) as tmp:
            copy_path = Path(tmp) / "snapshot.sqlite3"
            source = sqlite3.connect(self.path)
            target = sqlite3.connect(copy_path)
            try:
                source.backup(target)
            finally:
                source.close()
            counts = self._counts(target, self._tables(target))
            target.close()
            with copy_path.open("rb") as snapshot:
                while chunk := snapshot.read(CHUNK):
                    out.write(chunk)
        return counts

    def restore(self, dump_file: Path, *, jobs: int, progress: Callable[[str], None]) -> None:
        source = sqlite3.connect(dump_file)
        try:
            check = source.execute("PRAGMA integrity_check").fetchone()
            if not check or check[0] != "ok":
                raise BackupError(f"the backup is not a sound SQLite database: {check}")
            target = sqlite3.connect(self.path)
            try:
                source.backup(target, pages=1024, progress=lambda _s, remaining, total: progress(
                    f"copied {total - remaining} of {total} pages"))  # fmt: skip
            finally:
                target.close()
        finally:
            source.close()

    @contextmanager
    def scratch(self) -> Iterator[Engine]:
        with tempfile.TemporaryDirectory(prefix=_scratch_name() + "_") as tmp:
            yield SqliteEngine({"NAME": os.path.join(tmp, "scratch.sqlite3")})

    def scratch_reap(self, *, started_before: float) -> list[str]:
        stale = [path for path in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*")
                 if (started := _scratch_started(path.name)) is not None and started < started_before]  # fmt: skip
        for path in stale:
            shutil.rmtree(path, ignore_errors=True)
        return [path.name for path in stale]

    def row_counts(self, tables: list[str]) -> dict[str, int]:
        conn = sqlite3.connect(self.path)
        try:
            return self._counts(conn, tables)
        finally:
            conn.close()


def engine_for(settings: dict[str, Any]) -> Engine:
    vendor = settings["ENGINE"].rsplit(".", 1)[-1]
    if vendor == "postgresql":
        return PostgresEngine(settings)
    if vendor == "sqlite3":
        return SqliteEngine(settings)
    raise BackupError(f"no backup engine for {settings['ENGINE']}")
