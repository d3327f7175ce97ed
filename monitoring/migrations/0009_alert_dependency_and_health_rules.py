"""Rules for a failing dependency and for health not healthy for 10 minutes. A fresh install gets
them with the other defaults after ``migrate``; an install that already has rules gets them
here, once, with its existing email channel (an admin can edit or delete them as any other)."""

from django.db import migrations, models

from common.migrations import rules_added

ADDED = [
    {"name": "Dependency failing", "metric": "dependency_down", "scope": "dependency", "comparison": "gte",
     "threshold": 1, "recovery_threshold": 0.5, "window_s": 60, "for_s": 120, "severity": "warning",
     "description": "An external service in OPSITE_DEPENDENCIES, or the S3 backup store, has failed its check "
                    "for 2 minutes; /health/dependencies shows the error and the circuit."},
    {"name": "Health not healthy for 10 minutes", "metric": "health_status", "scope": "overall",
     "comparison": "gte", "threshold": 1, "recovery_threshold": 0.5, "window_s": 60, "for_s": 600,
     "severity": "warning",
     "description": "/health/detailed has not been healthy for 10 minutes; it names the checks that are not ok "
                    "(manage.py monitor --once prints them)."},
]  # fmt: skip


forwards, backwards = rules_added(ADDED)


class Migration(migrations.Migration):
    dependencies = [("monitoring", "0008_slowrequest")]

    operations = [
        migrations.AlterField(
            model_name="alertrule",
            name="scope",
            field=models.CharField(
                choices=[("overall", "overall"), ("host", "per host"), ("restaurant", "per restaurant"),
                         ("dependency", "per dependency")],
                default="overall", max_length=16,
            ),  # fmt: skip
        ),
        migrations.RunPython(forwards, backwards),
    ]
