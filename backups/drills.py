"""Restore drills: prove, on a schedule and on demand, that point-in-time recovery brings the
business back, not only the bytes. The newest base backup and the archived WAL (and the
archiver's spool) are restored into a scratch cluster on a free port; there the application's
invariants are checked: every restaurant's events numbered 1..N without a gap, every migration
the live database has applied present, the newest events readable the way the catch-up query
reads them. The time to restore is recorded as the measured RTO; the copy is dropped."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection
from django.utils import timezone

from .engines import BackupError
from .models import RestoreDrill
from .pitr import base_backups, business_checks, free_port, restore_to_point, stop_cluster
from .services import job_lock

CATCH_UP_SAMPLE = 100


def _scratch_dir() -> Path:
    """A directory the server's user can enter (the restored cluster runs as postgres under root)."""
    root = Path(tempfile.mkdtemp(prefix="opsite-drill-", dir=settings.OPSITE_PITR_SCRATCH_DIR or None))
    root.chmod(0o755)
    return root


def _live_migrations() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM django_migrations")
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def _catch_up_sample(dsn: str) -> int:
    """The newest events of the busiest restaurant, read as the catch-up endpoint reads them."""
    with psycopg.connect(dsn) as conn:
        busiest = conn.execute("SELECT restaurant_id, max(seq) FROM realtime_orderevent GROUP BY restaurant_id "
                               "ORDER BY 2 DESC LIMIT 1").fetchone()  # fmt: skip
        if busiest is None:
            return 0
        rows = conn.execute("SELECT seq, type, order_id, total_amount, data FROM realtime_orderevent "
                            "WHERE restaurant_id = %s AND seq > %s ORDER BY seq LIMIT %s",
                            [busiest[0], max(0, busiest[1] - CATCH_UP_SAMPLE), CATCH_UP_SAMPLE]).fetchall()  # fmt: skip
    return len(rows)


def verdict(checks: dict[str, Any], *, live_migrations: int) -> list[str]:
    """What a restored copy got wrong, in words (empty: it passed)."""
    wrong = [f"{slug}: {r['events']} events for seqs 1..{r['last_seq']}" for slug, r in checks["restaurants"].items()
             if not r["gap_free"]]  # fmt: skip
    if checks["migrations"] < live_migrations:
        wrong.append(f"{checks['migrations']} migrations applied, the live database has {live_migrations}")
    if checks.get("catch_up_read", 0) == 0 and any(r["events"] for r in checks["restaurants"].values()):
        wrong.append("no event could be read back by the catch-up query")
    return wrong


def drill_run(*, reason: str = "scheduled") -> RestoreDrill:
    """Restore the newest point into a scratch cluster, check it, drop it; the drill's record."""
    if not base_backups():
        raise BackupError("no base backup is stored: run `manage.py backup --base` first")
    drill = RestoreDrill.objects.create(reason=reason, node=settings.OPSITE_NODE_NAME)
    scratch = _scratch_dir()
    into = scratch / "cluster"
    try:
        with job_lock(f"{settings.OPSITE_NODE_NAME}:{os.getpid()}:drill"):
            restored = restore_to_point(into=into, target=None, port=free_port(),
                                        spool=Path(settings.OPSITE_WAL_SPOOL_DIR))  # fmt: skip
            try:
                dsn = restored.dsn(connection.settings_dict["NAME"])
                checks = business_checks(dsn)
                checks["catch_up_read"] = _catch_up_sample(dsn)
            finally:
                stop_cluster(into)
        wrong = verdict(checks, live_migrations=_live_migrations())
        RestoreDrill.objects.filter(pk=drill.pk).update(
            status=RestoreDrill.Status.FAILED if wrong else RestoreDrill.Status.PASSED, finished_at=timezone.now(),
            base=restored.base.name, segments=restored.segments, rto_seconds=round(restored.seconds, 3),
            restored_to=restored.replayed_to, checks=checks, error="; ".join(wrong),
        )  # fmt: skip
    except (BackupError, OSError, psycopg.Error) as exc:
        RestoreDrill.objects.filter(pk=drill.pk).update(status=RestoreDrill.Status.FAILED,
                                                        finished_at=timezone.now(), error=str(exc)[:2000])  # fmt: skip
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    drill.refresh_from_db()
    return drill
