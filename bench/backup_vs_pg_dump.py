"""Backups against the tools they replace, side by side on one database (default ~1 GB):

- backup wall time: opsite (pg_dump -Z0 streamed through zstd, sha256 on the way, stored,
  re-read to check) vs `pg_dump -Fc` to a file. Target: <= 0.5x.
- verification: opsite (checksum, decompress, pg_restore -j2 into a scratch database, row
  counts, drop) vs `pg_restore -j2` of the pg_dump -Fc file into an empty database. Target: <= 1.2x.
- peak memory of opsite's process at two database sizes. Target: flat.

The data is order-like rows of hex text, amounts and times that compress about as well as
real order data does (pgbench's blank-padded rows would flatter every compressor).

    .venv/bin/python bench/backup_vs_pg_dump.py [--gib 1.0] [--small-gib 0.25]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psutil
import psycopg
from _support import BENCH_DB, PG, fresh_database


def database_size() -> int:
    with psycopg.connect(f"{PG}/{BENCH_DB}") as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        return int(row[0]) if row else 0


ROWS_PER_GIB = 6_200_000


def fill(gib: float) -> None:
    """Grow the bench table to about ``gib`` GiB (it only ever grows)."""
    with psycopg.connect(f"{PG}/{BENCH_DB}", autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_order (id bigint PRIMARY KEY, ref text, note text, "
            "amount numeric(10,2), at timestamptz)"
        )
        have_row = conn.execute("SELECT coalesce(max(id), 0) FROM bench_order").fetchone()
        have = int(have_row[0]) if have_row else 0
        want = int(gib * ROWS_PER_GIB)
        if want > have:
            conn.execute(
                "INSERT INTO bench_order SELECT g, md5(g::text), md5((g * 7)::text) || md5((g * 13)::text), "
                "(g %% 100000) / 100.0, now() - make_interval(secs => g) FROM generate_series(%s, %s) g",
                [have + 1, want],
            )
        conn.execute("VACUUM ANALYZE bench_order")


def timed(command: list[str]) -> float:
    started = time.monotonic()
    subprocess.run(command, check=True, capture_output=True)
    return time.monotonic() - started


class PeakMemory:
    """Samples this process's RSS (the subprocesses are the database tools, measured apart)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, me.memory_info().rss)

    def __enter__(self) -> PeakMemory:
        self.peak = psutil.Process().memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def ours() -> tuple[float, float, int]:
    from backups.services import backup_create, backup_verify

    with PeakMemory() as memory:
        started = time.monotonic()
        backup = backup_create(reason="bench")
        made = time.monotonic() - started
        started = time.monotonic()
        backup_verify(backup=backup)
        verified = time.monotonic() - started
    return made, verified, memory.peak


def baseline(workdir: Path) -> tuple[float, float, int]:
    dump = workdir / "baseline.dump"
    made = timed(["pg_dump", "-Fc", "-f", str(dump), "-d", f"{PG}/{BENCH_DB}"])
    scratch = "opsite_bench_restore"
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {scratch} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {scratch}")
    restored = timed(["pg_restore", "-j2", "--no-owner", "-d", f"{PG}/{scratch}", str(dump)])
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {scratch} WITH (FORCE)")
    size = dump.stat().st_size
    dump.unlink()
    return made, restored, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--small-gib", type=float, default=0.25)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="opsite-bench-backup-") as tmp:
        os.environ["OPSITE_BACKUP_DIR"] = tmp
        fresh_database()
        from backups.models import Backup

        peaks = {}
        # The first, small run warms imports and pools, so the two measured peaks compare like with like.
        for label, gib in (("warm-up", args.small_gib), ("small", args.small_gib), ("large", args.gib)):
            fill(gib)
            size = database_size()
            base_dump, base_restore, base_size = baseline(Path(tmp))
            made, verified, peak = ours()
            backup = Backup.objects.order_by("-pk").first()
            assert backup is not None and backup.status == "verified", backup
            peaks[label] = peak
            print(f"database {size / 2**30:.2f} GiB ({label})")
            print(f"  backup: pg_dump -Fc {base_dump:6.1f} s ({base_size / 2**20:.0f} MiB)   opsite {made:6.1f} s "
                  f"({backup.size_bytes / 2**20:.0f} MiB)   ratio {made / base_dump:.2f}  (target <= 0.5)")  # fmt: skip
            print(f"  verify: pg_restore -j2 {base_restore:6.1f} s   opsite {verified:6.1f} s   "
                  f"ratio {verified / base_restore:.2f}  (target <= 1.2)")  # fmt: skip
        small, large = peaks["small"], peaks["large"]
        print(f"peak RSS of opsite's process: {small / 2**20:.0f} MiB at {args.small_gib} GiB, "
              f"{large / 2**20:.0f} MiB at {args.gib} GiB  (target: flat)")  # fmt: skip


if __name__ == "__main__":
    main()
