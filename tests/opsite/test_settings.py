from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.test import override_settings

from opsite.checks import check_production_settings
from tests.conftest import ROOT

GOOD_KEY = "4f8a9c2e-opsite-production-key-Zq7w1Lm0Xy5vB3nR8tK6pD2sH9jF4gC1"


def run_manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "REDIS_", "SECRET_"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def production_env(**overrides: str) -> dict[str, str]:
    env = {
        "DJANGO_SETTINGS_MODULE": "opsite.settings.production",
        "SECRET_KEY": GOOD_KEY,
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/opsite",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "ALLOWED_HOSTS": "ops.example.com",
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v}


def test_development_settings_load_with_no_environment():
    result = run_manage("check", env={})
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_production_deploy_check_is_clean():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("overrides", "check_id"),
    [
        ({"SECRET_KEY": ""}, "opsite.E001"),
        ({"SECRET_KEY": "django-insecure-" + "x" * 50}, "opsite.E001"),
        ({"DJANGO_DEBUG": "true"}, "opsite.E002"),
        ({"REDIS_URL": ""}, "opsite.E003"),
    ],
)
def test_production_refuses_unsafe_configuration(overrides, check_id):
    result = run_manage("check", env=production_env(**overrides))
    assert result.returncode != 0
    assert check_id in result.stderr


@pytest.mark.parametrize("server", ["opsite.wsgi", "opsite.asgi"])
def test_production_server_refuses_to_start_with_a_development_secret(server):
    env = {**os.environ, **production_env(SECRET_KEY="django-insecure-" + "x" * 50)}
    result = subprocess.run(
        [sys.executable, "-c", f"import {server}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "opsite refuses to start" in result.stderr and "opsite.E001" in result.stderr


def test_checks_are_quiet_outside_production():
    with override_settings(OPSITE_ENVIRONMENT="development", SECRET_KEY="", DEBUG=True):
        assert check_production_settings() == []


def test_in_process_layer_is_an_error_in_production():
    layers = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    with override_settings(OPSITE_ENVIRONMENT="production", SECRET_KEY=GOOD_KEY, DEBUG=False, CHANNEL_LAYERS=layers):
        assert "opsite.E003" in {p.id for p in check_production_settings()}


@pytest.mark.django_db
def test_migrations_match_the_models():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


@pytest.mark.django_db
def test_login_attempts_are_rate_limited_per_username_and_address(settings, django_user_model, needs_redis):
    import uuid

    from django.test import Client

    settings.OPSITE_LOGIN_USER_RATE_PER_MINUTE = 3
    settings.OPSITE_LOGIN_RATE_PER_MINUTE = 1000
    name = f"guess-{uuid.uuid4().hex[:8]}"
    django_user_model.objects.create_user(name, password="right-password", is_staff=True)
    client = Client(REMOTE_ADDR="10.9.8.7")
    for _ in range(3):
        assert client.post("/accounts/login/", {"username": name, "password": "wrong"}).status_code == 200
    limited = client.post("/accounts/login/", {"username": name, "password": "right-password"})
    assert limited.status_code == 429 and int(limited["Retry-After"]) > 0
    assert "Too many login attempts" in limited.content.decode()
    assert "_auth_user_id" not in client.session  # the right password did not get through either
    admin = client.post("/admin/login/", {"username": name, "password": "right-password"})
    assert admin.status_code == 429
    settings.OPSITE_LOGIN_USER_RATE_PER_MINUTE = 1000
    settings.OPSITE_LOGIN_RATE_PER_MINUTE = 2
    other = Client(REMOTE_ADDR="10.9.8.6")
    statuses = [other.post("/accounts/login/", {"username": f"x{n}", "password": "p"}).status_code for n in range(3)]
    assert statuses == [200, 200, 429]
