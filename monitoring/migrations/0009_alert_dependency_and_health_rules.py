"""Rules for a failing dependency and for health not healthy for 10 minutes. A fresh install gets
them with the other defaults after ``migrate``; an install that already has rules gets them
here, once, with its existing email channel (an admin can edit or delete them as any other)."""

from django.db import migrations, models

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


def forwards(apps, schema_editor):
    AlertRule = apps.get_model("monitoring", "AlertRule")
    NotificationChannel = apps.get_model("monitoring", "NotificationChannel")
    if not AlertRule.objects.exists():
        return  # a fresh install: the defaults, these included, are made after migrate
    channel = NotificationChannel.objects.filter(name="Operators by email").first()
    for spec in ADDED:
        rule, created = AlertRule.objects.get_or_create(name=spec["name"], defaults=spec)
        if created and channel is not None:
            rule.channels.add(channel)


def backwards(apps, schema_editor):
    AlertRule = apps.get_model("monitoring", "AlertRule")
    for spec in ADDED:
        AlertRule.objects.filter(name=spec["name"], metric=spec["metric"]).delete()


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
