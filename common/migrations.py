"""Helpers for post_migrate handlers: a migrate to an older migration of one app still ends
with the signal for every app, before some of their tables exist."""

from __future__ import annotations

from typing import Any

from django.db import connections


def table_exists(model: Any, using: str = "default") -> bool:
    return bool(model._meta.db_table in connections[using].introspection.table_names())
