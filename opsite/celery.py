import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsite.settings.development")

app = Celery("opsite", task_cls="monitoring.ledger.runs:LedgeredTask")  # runs sent by beat are ledgered
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
