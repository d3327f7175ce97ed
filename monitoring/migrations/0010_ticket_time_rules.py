"""Rules for orders late and very late past their restaurant's ticket times. A fresh install gets
them with the other defaults after ``migrate``; an install that already has rules gets them here."""

from django.db import migrations

from common.migrations import rules_added

ADDED = [
    {"name": "Orders late", "metric": "tickets_late", "scope": "restaurant", "comparison": "gte", "threshold": 1,
     "recovery_threshold": 0.5, "window_s": 60, "for_s": 0, "severity": "warning",
     "description": "Open orders are past the restaurant's expected ticket time plus its late threshold (by "
                    "default 15 + 5 minutes; set per restaurant in the admin)."},
    {"name": "Orders very late", "metric": "tickets_very_late", "scope": "restaurant", "comparison": "gte",
     "threshold": 1, "recovery_threshold": 0.5, "window_s": 60, "for_s": 0, "severity": "critical",
     "description": "Open orders are past the restaurant's expected ticket time plus its very-late threshold (by "
                    "default 15 + 7 minutes)."},
]  # fmt: skip


forwards, backwards = rules_added(ADDED)


class Migration(migrations.Migration):
    dependencies = [("monitoring", "0009_alert_dependency_and_health_rules")]

    operations = [migrations.RunPython(forwards, backwards)]
