"""A process configured as a deployment with a streaming standby is (DATABASE_URL is the
primary, DATABASE_REPLICA_URL the standby). It reads one command per line on stdin and answers
each with one JSON line, so a test can change the standby under a process that keeps running."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsite.settings.test")
django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connections  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.utils import timezone  # noqa: E402

from common.replicas import monitor, replica_reads  # noqa: E402
from monitoring.models import Heartbeat  # noqa: E402


def route() -> dict[str, Any]:
    """Where a dashboard read goes, and what that server says it is."""
    with replica_reads():
        alias = Heartbeat.objects.all().db
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT pg_is_in_recovery(), inet_server_port()")
            in_recovery, port = cursor.fetchone()
        connections[alias].close()
    return {"alias": alias, "in_recovery": in_recovery, "port": port}


def streamed(name: str) -> dict[str, Any]:
    """Write a row on the primary; wait up to 10 s for a dashboard read to find it."""
    Heartbeat.objects.create(name=name, at=timezone.now())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with replica_reads():
            query = Heartbeat.objects.filter(name=name)
            if query.exists():
                return {"seen": True, "alias": query.db}
        time.sleep(0.05)
    return {"seen": False}


def seen_by_dashboard(name: str) -> dict[str, Any]:
    with replica_reads():
        query = Heartbeat.objects.filter(name=name)
        return {"seen": query.exists(), "alias": query.db}


def request_with_write() -> dict[str, Any]:
    with override_settings(ROOT_URLCONF="tests.opsite.urls", ALLOWED_HOSTS=["testserver"]):
        response = Client().get("/test/replica/?write=1")
    return {"status": response.status_code, **response.json()}


def state() -> dict[str, Any]:
    checked = monitor.check("replica0")
    return {"ok": checked.ok, "lag_s": checked.lag_s, "detail": checked.detail}


def health() -> dict[str, Any]:
    user, _ = get_user_model().objects.get_or_create(username="standby-admin", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(user)
    with override_settings(ALLOWED_HOSTS=["testserver"]):
        body = client.get("/health/detailed").json()
    return body["components"]["replicas"]


COMMANDS = {"route": route, "streamed": streamed, "seen": seen_by_dashboard, "request": request_with_write,
            "state": state, "health": health}  # fmt: skip

for line in sys.stdin:
    command, *args = line.split()
    try:
        answer = COMMANDS[command](*args)
    except Exception as exc:  # the test reads the failure instead of a hung pipe
        answer = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(answer), flush=True)
