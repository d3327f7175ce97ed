from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("monitoring", "0007_query_samples_keep_no_values")]

    operations = [
        migrations.CreateModel(
            name="SlowRequest",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("request_id", models.CharField(db_index=True, max_length=128)),
                ("trace_id", models.CharField(blank=True, db_index=True, default="", max_length=32)),
                ("route", models.CharField(db_index=True, max_length=300)),
                ("method", models.CharField(max_length=8)),
                ("path", models.CharField(max_length=500)),
                ("status_code", models.PositiveSmallIntegerField()),
                ("duration_ms", models.FloatField()),
                ("queries", models.PositiveIntegerField(default=0)),
                ("query_ms", models.FloatField(default=0.0)),
                ("statements", models.JSONField(blank=True, default=list)),
                ("created_at", models.DateTimeField(db_index=True)),
            ],
            options={"ordering": ["-created_at"]},
        ),
    ]
