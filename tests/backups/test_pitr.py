"""Point-in-time recovery, drilled on a PostgreSQL cluster of the test's own (initdb on a free
port, wal_level=replica), so archiving and a killed primary never touch the shared server.

A till sends orders through the ingest API of a real server process the whole time; the WAL
receiver (``manage.py wal_archive --synchronous``) archives the log; the primary is killed with
SIGKILL; ``manage.py restore_backup --to-latest`` brings the database back into a new cluster, and
every order the API acknowledged is counted there, per restaurant, by its sequence number."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest

from backups.engines import BackupError
from backups.pitr import as_server_user, pg_tool
from tests.conftest import ROOT, _need, free_port, manage_py, refused_in_one_line, server_env

pytestmark = [pytest.mark.processes, pytest.mark.timeout(300)]
ARCHIVE_TIMEOUT_S = 3


@dataclass
class Cluster:
    root: Path
    data: Path
    port: int
    others: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/opsite"

    def kill(self) -> None:
        """SIGKILL of the postmaster: the server dies as in a crash, with no shutdown checkpoint."""
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)


def _server_tools() -> bool:
    try:
        return all(pg_tool(name) for name in ("initdb", "pg_ctl", "pg_basebackup", "pg_receivewal"))
    except BackupError:
        return False


@pytest.fixture
def private_cluster() -> Iterator[Cluster]:
    _need("PostgreSQL server programs (initdb, pg_ctl, pg_basebackup, pg_receivewal)", _server_tools())
    root = Path(tempfile.mkdtemp(prefix="opsite-pitr-", dir="/tmp"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    root.chmod(0o755)
    data, port = root / "primary", free_port()
    archive = root / "server-archive"  # where the server's own archive_command copies finished segments
    archive.mkdir()
    if os.geteuid() == 0:
        shutil.chown(archive, "postgres", "postgres")
    subprocess.run(as_server_user([pg_tool("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
                   check=True, capture_output=True, timeout=60)  # fmt: skip
    with (data / "postgresql.auto.conf").open("a") as conf:
        conf.write(f"port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{root}'\n"
                   "wal_level = replica\nmax_wal_senders = 5\nmax_replication_slots = 5\nshared_buffers = 32MB\n"
                   f"archive_mode = on\narchive_timeout = {ARCHIVE_TIMEOUT_S}\n"
                   f"archive_command = 'test ! -f {archive}/%f && cp %p {archive}/%f.tmp && mv {archive}/%f.tmp {archive}/%f'\n")  # fmt: skip
    subprocess.run(as_server_user([pg_tool("pg_ctl"), "-D", str(data), "-l", str(root / "primary.log"), "-w", "start"]),
                   check=True, capture_output=True, timeout=60)  # fmt: skip
    with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute("CREATE DATABASE opsite")
    cluster = Cluster(root=root, data=data, port=port)
    yield cluster
    for directory in (data, *cluster.others):
        if (directory / "postmaster.pid").exists():
            subprocess.run(as_server_user([pg_tool("pg_ctl"), "-D", str(directory), "-m", "immediate", "stop"]),
                           capture_output=True, timeout=60)  # fmt: skip
    shutil.rmtree(root, ignore_errors=True)


def _env(cluster: Cluster) -> dict[str, str]:
    return {**server_env(), "DATABASE_URL": cluster.url, "OPSITE_BACKUP_DIR": str(cluster.root / "backups"),
            "OPSITE_WAL_SPOOL_DIR": str(cluster.root / "spool")}  # fmt: skip


@dataclass
class Till:
    """Orders sent one at a time through the ingest API; what each answer acknowledged."""

    url: str
    token: str
    acknowledged: dict[int, float] = field(default_factory=dict)  # seq -> when the 201 came back
    stop: threading.Event = field(default_factory=threading.Event)
    failures: int = 0

    def run(self) -> None:
        with httpx.Client(timeout=3) as client:
            n = 0
            while not self.stop.is_set():
                n += 1
                try:
                    response = client.post(f"{self.url}/api/v1/orders/events", headers={"Authorization": f"Bearer {self.token}"},
                                           json={"type": "order.created", "order_id": f"D{n}", "total_amount": "9.50",
                                                 "items_count": 1})  # fmt: skip
                except httpx.HTTPError:
                    self.failures += 1
                    time.sleep(0.05)
                    continue
                if response.status_code == 201:
                    self.acknowledged[response.json()["seq"]] = time.time()
                else:
                    self.failures += 1
                time.sleep(0.01)


@pytest.mark.parametrize("mode", ["synchronous", "archive_timeout"])
def test_a_killed_primary_is_restored_to_its_last_acknowledged_order(mode, private_cluster, start_server, needs_redis):
    """synchronous: pg_receivewal reports each flush and the server waits for it (nothing
    acknowledged may be lost); archive_timeout: the server archives a segment at least every
    ARCHIVE_TIMEOUT_S and opsite ships it (what is lost is at most that much)."""
    cluster = private_cluster
    env = _env(cluster)
    command = ["wal_archive", "--synchronous"] if mode == "synchronous" else [
        "wal_archive", "--ship-only", "--spool", str(cluster.root / "server-archive")]  # fmt: skip
    receiver = subprocess.Popen([sys.executable, "manage.py", *command], cwd=ROOT, env=env,
                                stdout=(cluster.root / "receiver.log").open("wb"), stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while b"streaming" not in (cluster.root / "receiver.log").read_bytes() and time.monotonic() < deadline:
            if mode != "synchronous":
                break
            time.sleep(0.1)
        if mode == "synchronous":  # from now on a commit returns only once the receiver has its WAL on disk
            with psycopg.connect(cluster.url.replace("/opsite", "/postgres"), autocommit=True) as conn:
                conn.execute("ALTER SYSTEM SET synchronous_standby_names = 'opsite_wal'")
                conn.execute("SELECT pg_reload_conf()")
        assert manage_py("migrate", "-v0", env=env, timeout=120).returncode == 0
        made = manage_py("shell", "-c", "from realtime.services import restaurant_create; "
                         "print(restaurant_create(slug='drill', name='Drill')[1])", env=env)  # fmt: skip
        token = made.stdout.strip().splitlines()[-1]
        base = manage_py("backup", "--base", env=env, timeout=120)
        assert base.returncode == 0, base.stderr
        assert "base backup" in base.stdout
        server = start_server({k: env[k] for k in ("DATABASE_URL", "OPSITE_BACKUP_DIR", "OPSITE_WAL_SPOOL_DIR")})
        till = Till(url=server.url, token=token)
        sender = threading.Thread(target=till.run, daemon=True)
        sender.start()
        time.sleep(4)
        midpoint = datetime.now(UTC)
        acknowledged_by_midpoint = max(till.acknowledged)
        time.sleep(4)
        cluster.kill()
        killed_at = time.time()
        time.sleep(1)
        till.stop.set()
        sender.join(timeout=10)
    finally:
        receiver.send_signal(signal.SIGTERM)
        receiver.wait(timeout=60)
    acknowledged = {seq: at for seq, at in till.acknowledged.items() if at <= killed_at}
    assert len(acknowledged) > 100, f"the till got only {len(acknowledged)} orders through"

    # restore to the latest point the archive and the receiver's spool reach, into a new cluster
    into, port = cluster.root / "restored", free_port()
    cluster.others.append(into)
    began = time.monotonic()
    restored = manage_py(
        "restore_backup", "--to-latest", "--into", str(into), "--port", str(port), env=env, timeout=180
    )
    rto = time.monotonic() - began
    assert restored.returncode == 0, restored.stderr
    assert "checks: " in restored.stdout and "gap-free" in restored.stdout, restored.stdout
    with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=opsite") as conn:
        seqs = {row[0] for row in conn.execute("SELECT seq FROM realtime_orderevent")}
    lost = sorted(set(acknowledged) - seqs)
    newest_kept = max(acknowledged[s] for s in acknowledged if s in seqs)
    rpo_s = max(0.0, max(acknowledged.values()) - newest_kept)
    print(f"\nPITR drill ({mode}): {len(acknowledged)} orders acknowledged, {len(lost)} lost, RPO {rpo_s:.3f} s; "
          f"restore {rto:.1f} s")  # fmt: skip
    if mode == "synchronous":
        assert not lost, f"acknowledged orders missing after the restore: {lost[:10]}"
    else:  # only the newest orders, within the archive timeout (and a ship interval) of the crash
        assert rpo_s <= ARCHIVE_TIMEOUT_S + 2, f"{len(lost)} orders over {rpo_s:.1f} s lost"
        assert all(s > newest for s in lost for newest in [max(seqs)]), "an older order is missing"
    assert seqs == set(range(1, max(seqs) + 1)), "the restored sequence numbers have a gap"

    # and to a moment in the middle: the orders up to it, none after
    earlier = cluster.root / "backups" / "restores" / "midpoint"  # a bare name, as the interface gives it
    cluster.others.append(earlier)
    done = manage_py("restore_backup", "latest", "--to-time", midpoint.isoformat(), "--into", "midpoint", "--yes",
                     env=env, timeout=180)  # fmt: skip
    assert done.returncode == 0, done.stderr
    earlier_port = int(done.stdout.split("running on port ")[1].split()[0])
    with psycopg.connect(f"host=127.0.0.1 port={earlier_port} user=postgres dbname=opsite") as conn:
        row = conn.execute("SELECT max(seq), max(received_at) FROM realtime_orderevent").fetchone()
    assert row is not None and row[0] >= acknowledged_by_midpoint and row[1] <= midpoint
    assert row[0] < max(seqs), "a restore to the midpoint holds orders from after it"

    status = manage_py("pitr_status", env=env)
    assert status.returncode == 0 and "restorable" in status.stdout, status.stdout + status.stderr
    segments = sorted((cluster.root / "backups" / "files" / "pitr" / "wal").glob("*.zst"))
    if mode == "archive_timeout":  # a segment every few seconds: a hole in the archive is found and named
        assert len(segments) >= 3, segments
        segments[1].unlink()
        assert refused_in_one_line(
            manage_py("pitr_status", env=env), f"gap: 1 segments missing from {segments[1].stem}"
        )


def test_restores_refuse_bad_input_in_one_line(private_cluster):
    env = _env(private_cluster)
    into = str(private_cluster.root / "x")
    assert refused_in_one_line(manage_py("restore_backup", "--to-latest", env=env), "--into DIR is required")
    assert refused_in_one_line(manage_py("restore_backup", "--to-time", "yesterday", "--into", into, env=env),
                               "is not an ISO 8601 time")  # fmt: skip
    assert refused_in_one_line(manage_py("restore_backup", "--to-time", "2026-12-01T10:00:00", "--into", into, env=env),
                               "needs its offset")  # fmt: skip
    assert refused_in_one_line(manage_py("restore_backup", "--to-latest", "--into", into, env=env),
                               "no base backup is stored yet")  # fmt: skip
    assert refused_in_one_line(manage_py("restore_backup", "7", "--to-latest", "--into", into, env=env),
                               "leave out the backup id")  # fmt: skip
    occupied = private_cluster.root / "occupied"
    occupied.mkdir()
    (occupied / "something").write_text("keep me")
    assert manage_py("migrate", "-v0", env=env, timeout=120).returncode == 0
    with_base = manage_py("shell", "-c", "from backups.pitr import base_backup_create; base_backup_create()", env=env)
    assert with_base.returncode == 0, with_base.stderr
    assert refused_in_one_line(manage_py("restore_backup", "--to-latest", "--into", str(occupied), env=env),
                               "is not empty; pass --yes")  # fmt: skip
    refused = manage_py("restore_backup", "--to-latest", "--into", str(occupied), "--yes", env=env)
    assert refused_in_one_line(refused, "was not made by a restore")  # --yes replaces only an earlier restore
    assert (occupied / "something").read_text() == "keep me"
    sqlite = {**env, "DATABASE_URL": f"sqlite:///{private_cluster.root / 'db.sqlite3'}"}
    assert refused_in_one_line(manage_py("backup", "--base", env=sqlite), "point-in-time recovery needs PostgreSQL")


def test_wal_push_archives_one_segment_as_an_archive_command_would(tmp_path, private_cluster):
    env = _env(private_cluster)
    segment = tmp_path / "000000010000000000000007"
    segment.write_bytes(b"\x01" * (1 << 20))
    done = manage_py("wal_push", str(segment), segment.name, env=env)
    assert done.returncode == 0 and done.stdout.startswith(f"archived {segment.name} sha256 "), done.stderr
    stored = private_cluster.root / "backups" / "files" / "pitr" / "wal" / f"{segment.name}.zst"
    assert stored.exists() and stored.stat().st_size < 10_000  # compressed
    again = manage_py("wal_push", str(segment), segment.name, env=env)  # the server retries: stored once
    assert again.returncode == 0 and len(list(stored.parent.glob("*.zst"))) == 1
    assert refused_in_one_line(manage_py("wal_push", str(segment), "notawal", env=env), "is not a WAL segment")
    assert refused_in_one_line(manage_py("wal_push", str(tmp_path / "missing"), segment.name, env=env), "is not a file")


def test_a_restore_drill_restores_checks_and_drops_its_copy(private_cluster):
    cluster = private_cluster
    env = _env(cluster)
    receiver = subprocess.Popen([sys.executable, "manage.py", "wal_archive"], cwd=ROOT, env=env,
                                stdout=(cluster.root / "receiver.log").open("wb"), stderr=subprocess.STDOUT)  # fmt: skip
    drills_before = set(Path(tempfile.gettempdir()).glob("opsite-drill-*"))
    try:
        assert manage_py("migrate", "-v0", env=env, timeout=120).returncode == 0
        orders = ("from realtime.services import restaurant_create; from realtime.models import Restaurant; "
                  "from tests.realtime.conftest import ingest_sync, event; "
                  "r = Restaurant.objects.filter(slug='drill').first() or restaurant_create(slug='drill', name='D')[0]; "
                  "[ingest_sync(r, event(f'O{{n}}')) for n in range({start}, {start} + 25)]")  # fmt: skip
        assert manage_py("shell", "-c", orders.format(start=0), env=env).returncode == 0
        assert manage_py("backup", "--base", env=env, timeout=120).returncode == 0
        assert manage_py("shell", "-c", orders.format(start=25), env=env).returncode == 0  # after the base: in WAL only
        drill = manage_py("restore_drill", env=env, timeout=180)
        assert drill.returncode == 0, drill.stderr
        assert "passed" in drill.stdout and "1 restaurants gap-free" in drill.stdout, drill.stdout
        with psycopg.connect(cluster.url) as conn:
            row = conn.execute("SELECT status, rto_seconds, checks FROM backups_restoredrill").fetchone()
        assert row is not None and row[0] == "passed" and row[1] > 0
        assert row[2]["restaurants"]["drill"] == {"events": 50, "last_seq": 50, "gap_free": True}  # the WAL replayed
        assert set(Path(tempfile.gettempdir()).glob("opsite-drill-*")) == drills_before, "the scratch copy was left"
        read = ("from backups.selectors import pitr_summary, passed_drill_age_s; s = pitr_summary(); "
                "print(s['archiver'], s['gaps'], s['last_drill']['status'], round(passed_drill_age_s()) < 600)")  # fmt: skip
        assert manage_py("shell", "-c", read, env=env).stdout.splitlines()[-1].split() == [
            "streaming",
            "0",
            "passed",
            "True",
        ]
    finally:
        receiver.send_signal(signal.SIGTERM)
        receiver.wait(timeout=60)
    # the archiver stopped: its slot stays and nothing streams, which the lag alert reads as down
    lag = manage_py("shell", "-c", "from backups.selectors import archiver_lag_s; print(archiver_lag_s())", env=env)
    assert lag.stdout.strip().splitlines()[-1] == "inf"
