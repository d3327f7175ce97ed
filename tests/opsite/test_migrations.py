"""Migrations as an installation runs them: ``manage.py migrate`` in a fresh process against a
database of its own, both from nothing and from an older release's schema with data in it.

The monitoring app's models are defined by subsystem (``monitoring/<subsystem>/models.py``) and
keep the app's label, tables and migrations, so neither path may create, rename or lose a
table."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from tests.conftest import server_env

ROOT = Path(__file__).resolve().parents[2]

MONITORING_TABLES = {
    "monitoring_alert", "monitoring_alertrule", "monitoring_alertrule_channels", "monitoring_deployment",
    "monitoring_frontenderrorgroup",
    "monitoring_heartbeat", "monitoring_metricsnapshot", "monitoring_mutewindow", "monitoring_nodereport",
    "monitoring_notification", "monitoring_notificationchannel", "monitoring_profile", "monitoring_profilearm",
    "monitoring_queryfingerprint", "monitoring_restaurantsnapshot", "monitoring_silence", "monitoring_slowrequest", "monitoring_taskrun",
}  # fmt: skip


@pytest.fixture
def scratch_database(needs_postgres: None) -> Iterator[str]:
    """A database of its own (dropped afterwards) and the URL a process reaches it at."""
    params = connection.settings_dict
    name = f"opsite_migrate_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin_url = f"postgres://{params['USER']}@{params['HOST']}:{params['PORT']}/postgres"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgres://{params['USER']}@{params['HOST']}:{params['PORT']}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def manage(url: str, *args: str) -> str:
    env = {**server_env(), "DATABASE_URL": url}
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as db:
        rows = db.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {name for (name,) in rows}


def test_a_fresh_database_migrates_to_the_models(scratch_database):
    manage(scratch_database, "migrate", "--no-input")
    assert {t for t in tables(scratch_database) if t.startswith("monitoring_")} == MONITORING_TABLES
    manage(scratch_database, "makemigrations", "--check", "--dry-run")
    assert "No migrations to apply" in manage(scratch_database, "migrate", "--no-input")


def test_an_older_release_with_data_upgrades_and_keeps_it(scratch_database):
    manage(scratch_database, "migrate", "monitoring", "0004", "--no-input")  # before alerts and the run ledger
    with psycopg.connect(scratch_database, autocommit=True) as db:
        db.execute("INSERT INTO monitoring_heartbeat (name, at, node) VALUES ('beat', now(), 'old-host')")
    manage(scratch_database, "migrate", "--no-input")
    with psycopg.connect(scratch_database, autocommit=True) as db:
        db.execute("INSERT INTO monitoring_taskrun (job, task, task_id, scheduled_for, started_at, status, node, error)"
                   " VALUES ('job', 'task', 'id-1', now(), now(), 'succeeded', 'n', '')")  # fmt: skip
    read = (
        "from monitoring.health.models import Heartbeat; from monitoring.ledger.models import TaskRun; "
        "from monitoring.alerts.models import AlertRule; "
        "print(Heartbeat.objects.get(name='beat').node, TaskRun.objects.get().task_id, AlertRule.objects.count() > 0)"
    )
    assert manage(scratch_database, "shell", "--no-imports", "-c", read).split() == ["old-host", "id-1", "True"]


def test_an_install_with_rules_gets_the_rules_added_later(scratch_database):
    manage(scratch_database, "migrate", "monitoring", "0008", "--no-input")  # the defaults of that release
    with psycopg.connect(scratch_database, autocommit=True) as db:
        db.execute("DELETE FROM monitoring_alertrule WHERE name <> 'Error rate above 5 %'")  # an admin's choice
    manage(scratch_database, "migrate", "--no-input")
    with psycopg.connect(scratch_database) as db:
        names = {name for (name,) in db.execute("SELECT name FROM monitoring_alertrule").fetchall()}
    assert names == {"Error rate above 5 %", "Dependency failing", "Health not healthy for 10 minutes", "Orders late",
                     "Orders very late", "Order delivery SLO burning fast", "Order delivery SLO burning slow",
                     "Boards connected SLO burning fast", "Boards connected SLO burning slow",
                     "No passed restore drill in 8 days", "WAL archiving behind", "WAL archive has a gap"}  # fmt: skip


def test_a_fresh_install_gets_every_default_rule_once(scratch_database):
    from monitoring.alerts.defaults import DEFAULT_RULES

    manage(scratch_database, "migrate", "--no-input")
    with psycopg.connect(scratch_database) as db:
        names = [name for (name,) in db.execute("SELECT name FROM monitoring_alertrule").fetchall()]
    assert sorted(names) == sorted(rule.name for rule in DEFAULT_RULES)
