from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("realtime", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="orderevent",
            name="trace_id",
            field=models.CharField(blank=True, default="", max_length=32),
        ),
    ]
