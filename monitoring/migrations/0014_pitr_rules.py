"""Alert rules for point-in-time recovery: restore drills, WAL archive lag and gaps. A fresh
install gets them with the other defaults after ``migrate``; an install that already has rules
gets them here."""

from django.db import migrations

from common.migrations import rules_added

ADDED = [
    {"name": "No passed restore drill in 8 days", "metric": "restore_drill_age_s", "scope": "overall",
     "comparison": "gt", "threshold": 8 * 86400, "recovery_threshold": None, "window_s": 300, "for_s": 0,
     "severity": "warning",
     "description": "The weekly restore drill has not passed for 8 days: a point-in-time restore is not known to "
                    "work. Admin → Restore drills shows the last one's error."},
    {"name": "WAL archiving behind", "metric": "wal_archive_lag_s", "scope": "overall", "comparison": "gt",
     "threshold": 60, "recovery_threshold": 30, "window_s": 300, "for_s": 120, "severity": "critical",
     "description": "The WAL archiver (manage.py wal_archive) trails the server by over a minute, or its slot "
                    "exists and nothing streams from it: a restore would lose what it has not got."},
    {"name": "WAL archive has a gap", "metric": "wal_archive_gaps", "scope": "overall", "comparison": "gte",
     "threshold": 1, "recovery_threshold": 0.5, "window_s": 300, "for_s": 0, "severity": "critical",
     "description": "A segment is missing between the oldest and the newest archived: a restore cannot replay past "
                    "it. manage.py pitr_status names it; take a new base backup."},
]  # fmt: skip

forwards, backwards = rules_added(ADDED)


class Migration(migrations.Migration):
    dependencies = [("monitoring", "0013_slo_burn_rules")]

    operations = [migrations.RunPython(forwards, backwards)]
