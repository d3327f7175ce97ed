"""System checks that keep an unsafe configuration from running in production."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured

INSECURE_KEY_MARKERS = ("django-insecure", "opsite-test-key")


def _is_production() -> bool:
    return getattr(settings, "OPSITE_ENVIRONMENT", "") == "production"


@register(Tags.security, "opsite")
def check_production_settings(app_configs: Any = None, **kwargs: Any) -> list[Error | Warning]:
    if not _is_production():
        return []
    problems: list[Error | Warning] = []
    key = settings.SECRET_KEY or ""
    if not key or any(marker in key for marker in INSECURE_KEY_MARKERS) or len(key) < 32:
        problems.append(
            Error(
                "SECRET_KEY is missing, too short or a development key.",
                hint="Set SECRET_KEY in the environment to a random string of 50+ characters.",
                id="opsite.E001",
            )
        )
    if settings.DEBUG:
        problems.append(Error("DEBUG is on in production.", hint="Unset DJANGO_DEBUG.", id="opsite.E002"))
    backend = settings.CHANNEL_LAYERS.get("default", {}).get("BACKEND", "")
    if backend.endswith("InMemoryChannelLayer"):
        problems.append(
            Error(
                "The in-process channel layer cannot reach sockets held by other processes.",
                hint="Set REDIS_URL so the channel layer runs on Redis.",
                id="opsite.E003",
            )
        )
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        problems.append(
            Warning(
                "SQLite is the database in production.",
                hint="Set DATABASE_URL to a postgres:// address for more than one machine.",
                id="opsite.W001",
            )
        )
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        problems.append(
            Error(
                "The filesystem Celery broker only works on one machine.",
                hint="Set REDIS_URL or CELERY_BROKER_URL.",
                id="opsite.E004",
            )
        )
    return problems


def enforce_production_settings() -> None:
    """Refuse to start a server process on an unsafe production configuration."""
    errors = [p for p in check_production_settings() if isinstance(p, Error)]
    if errors:
        lines = "; ".join(f"{e.id}: {e.msg}" for e in errors)
        raise ImproperlyConfigured(f"opsite refuses to start: {lines}")
