"""Point-in-time recovery's restore time (RTO) against the logical restore it competes with, side
by side on one ~1 GiB database in a private cluster (initdb on a free port, wal_level=replica):

- baseline: `pg_dump -Fc` of the database, then `pg_restore -j2` into an empty database.
- opsite: `manage.py backup --base`, orders written after it (in the WAL only), then
  `manage.py restore_backup --to-latest --into DIR` (fetch, check, unpack, replay, promote).
  Target: <= 1.0x the pg_restore -j2 time.

    .venv/bin/python bench/pitr_vs_pg_restore.py [--gib 1.0]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ROWS_PER_GIB = 6_200_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gib", type=float, default=1.0)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsite.settings.development")
    from backups.pitr import as_server_user, pg_tool

    root = Path(tempfile.mkdtemp(prefix="opsite-bench-pitr-", dir="/tmp"))
    root.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data, port = root / "primary", free_port()
    subprocess.run(as_server_user([pg_tool("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]),
                   check=True, capture_output=True)  # fmt: skip
    with (data / "postgresql.auto.conf").open("a") as conf:
        conf.write(f"port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{root}'\n"
                   "wal_level = replica\nmax_wal_senders = 5\nmax_wal_size = 4GB\nshared_buffers = 256MB\n")  # fmt: skip
    ctl = pg_tool("pg_ctl")
    subprocess.run(as_server_user([ctl, "-D", str(data), "-l", str(root / "log"), "-w", "start"]), check=True)
    restored_dirs: list[Path] = []
    try:
        server = f"postgres://postgres@127.0.0.1:{port}"
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE opsite")
        env = {**os.environ, "DATABASE_URL": f"{server}/opsite", "OPSITE_BACKUP_DIR": str(root / "backups"),
               "OPSITE_WAL_SPOOL_DIR": str(root / "spool"), "DJANGO_SETTINGS_MODULE": "opsite.settings.development"}  # fmt: skip
        manage = [sys.executable, str(ROOT / "manage.py")]
        receiver = subprocess.Popen([*manage, "wal_archive"], env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            subprocess.run([*manage, "migrate", "-v0"], env=env, check=True)
            with psycopg.connect(f"{server}/opsite", autocommit=True) as conn:
                conn.execute("CREATE TABLE bench_order (id bigint PRIMARY KEY, ref text, note text, "
                             "amount numeric(10,2), at timestamptz)")  # fmt: skip
                conn.execute("INSERT INTO bench_order SELECT g, md5(g::text), md5((g * 7)::text) || "
                             "md5((g * 13)::text), (g %% 100000) / 100.0, now() - make_interval(secs => g) "
                             "FROM generate_series(1, %s) g", [int(args.gib * ROWS_PER_GIB)])  # fmt: skip
                conn.execute("VACUUM ANALYZE bench_order")
                size = conn.execute("SELECT pg_database_size('opsite')").fetchone()[0]  # type: ignore[index]
            started = time.monotonic()
            subprocess.run([*manage, "backup", "--base"], env=env, check=True, capture_output=True)
            base_s = time.monotonic() - started
            with psycopg.connect(f"{server}/opsite", autocommit=True) as conn:  # after the base: WAL only
                conn.execute("INSERT INTO bench_order SELECT g, md5(g::text), '', 1, now() "
                             "FROM generate_series(%s, %s) g", [10**9, 10**9 + 100_000])  # fmt: skip
            time.sleep(3)  # the archiver has it
        finally:
            receiver.terminate()
            receiver.wait(timeout=60)

        dump = root / "baseline.dump"
        started = time.monotonic()
        subprocess.run(["pg_dump", "-Fc", "-f", str(dump), "-d", f"{server}/opsite"], check=True)
        dump_s = time.monotonic() - started
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE restored")
        started = time.monotonic()
        subprocess.run(["pg_restore", "-j2", "--no-owner", "-d", f"{server}/restored", str(dump)], check=True)
        restore_s = time.monotonic() - started

        into = root / "pitr-restored"
        restored_dirs.append(into)
        started = time.monotonic()
        subprocess.run([*manage, "restore_backup", "--to-latest", "--into", str(into), "--port", str(free_port()),
                        "--spool", str(root / "spool")], env=env, check=True, capture_output=True)  # fmt: skip
        pitr_s = time.monotonic() - started
        print(f"database {size / 2**30:.2f} GiB; base backup {base_s:.1f} s")
        print(f"  baseline: pg_dump -Fc {dump_s:.1f} s, pg_restore -j2 {restore_s:.1f} s")
        print(
            f"  opsite:   restore_backup --to-latest {pitr_s:.1f} s   ratio {pitr_s / restore_s:.2f}  (target <= 1.0)"
        )
    finally:
        for directory in (data, *restored_dirs):
            if (directory / "postmaster.pid").exists():
                subprocess.run(as_server_user([ctl, "-D", str(directory), "-m", "immediate", "stop"]),
                               capture_output=True)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
