"""Multiwindow burn-rate rules for each restaurant's service levels (order delivery and boards
connected). A fresh install gets them with the other defaults after ``migrate``; an install that
already has rules gets them here."""

from django.db import migrations

from common.migrations import rules_added

ADDED = [
    {"name": f"{what} SLO burning {speed}", "metric": f"{kind}_burn_{speed}", "scope": "restaurant",
     "comparison": "gt", "threshold": threshold, "recovery_threshold": threshold * 0.8, "window_s": 60,
     "for_s": for_s, "severity": severity,
     "description": f"{what}: the restaurant's error budget is being spent {threshold:g} times as fast as its "
                    f"objective allows ({windows}); see its service levels on /ops/."}
    for kind, what in (("delivery", "Order delivery"), ("connected", "Boards connected"))
    for speed, threshold, for_s, severity, windows in (
        ("fast", 14.4, 120, "critical", "over both the last hour and 5 minutes"),
        ("slow", 6.0, 900, "warning", "over both the last 6 hours and 30 minutes"),
    )
]  # fmt: skip


forwards, backwards = rules_added(ADDED)


class Migration(migrations.Migration):
    dependencies = [("monitoring", "0012_restaurant_service_levels")]

    operations = [migrations.RunPython(forwards, backwards)]
