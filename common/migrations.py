"""Helpers for post_migrate handlers: a migrate to an older migration of one app still ends
with the signal for every app, before some of their tables exist."""

from __future__ import annotations

from typing import Any

from django.db import connections


def table_exists(model: Any, using: str = "default") -> bool:
    return bool(model._meta.db_table in connections[using].introspection.table_names())


def rules_added(specs: list[dict[str, Any]]) -> tuple[Any, Any]:
    """The forwards and backwards functions of a migration that gives installs that already have
    alert rules the default rules a later release added (``specs``: the rules' fields), with the
    operators' email channel when there is one. A fresh install has no rules while migrating and
    gets every default after ``migrate`` instead."""

    def forwards(apps: Any, schema_editor: Any) -> None:
        rules = apps.get_model("monitoring", "AlertRule")
        if not rules.objects.exists():
            return
        channel = apps.get_model("monitoring", "NotificationChannel").objects.filter(name="Operators by email").first()
        for spec in specs:
            rule, created = rules.objects.get_or_create(name=spec["name"], defaults=spec)
            if created and channel is not None:
                rule.channels.add(channel)

    def backwards(apps: Any, schema_editor: Any) -> None:
        rules = apps.get_model("monitoring", "AlertRule")
        for spec in specs:
            rules.objects.filter(name=spec["name"], metric=spec["metric"]).delete()

    return forwards, backwards
