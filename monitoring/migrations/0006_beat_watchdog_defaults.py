"""Existing installs get the shorter beat bound the watchdog makes possible, where the shipped
rule and heartbeat job are unchanged (whatever an admin edited stays as it is)."""

from django.db import migrations

OLD_RULE, NEW_RULE = "Beat heartbeat older than 3 minutes", "Beat heartbeat older than 45 seconds"
HEARTBEAT_JOB = "monitoring: beat heartbeat"


def forwards(apps, schema_editor):
    AlertRule = apps.get_model("monitoring", "AlertRule")
    AlertRule.objects.filter(name=OLD_RULE, metric="beat_heartbeat_age_s", threshold=180).update(
        name=NEW_RULE, threshold=45
    )
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    job = PeriodicTask.objects.filter(name=HEARTBEAT_JOB, interval__every=30, interval__period="seconds").first()
    if job is not None:
        job.interval, _ = IntervalSchedule.objects.get_or_create(every=15, period="seconds")
        job.expire_seconds = 15
        job.save(update_fields=["interval", "expire_seconds"])


def backwards(apps, schema_editor):
    AlertRule = apps.get_model("monitoring", "AlertRule")
    AlertRule.objects.filter(name=NEW_RULE, metric="beat_heartbeat_age_s", threshold=45).update(
        name=OLD_RULE, threshold=180
    )


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0005_alerts_and_task_runs"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
