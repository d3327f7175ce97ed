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


@pytest.mark.django_db
def test_look_alike_usernames_share_the_limit_and_a_stranger_cannot_lock_the_owner_out(
    settings, django_user_model, needs_redis
):
    import uuid

    from django.test import Client

    settings.OPSITE_LOGIN_USER_RATE_PER_MINUTE = 3
    settings.OPSITE_LOGIN_RATE_PER_MINUTE = 1000
    name = f"owner{uuid.uuid4().hex[:6]}"
    django_user_model.objects.create_user(name, password="right-password", is_staff=True)
    stranger = Client(REMOTE_ADDR="203.0.113.5")
    for _ in range(3):
        assert stranger.post("/accounts/login/", {"username": name, "password": "wrong"}).status_code == 200
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in name.upper())
    again = stranger.post("/accounts/login/", {"username": fullwidth, "password": "right-password"})
    assert again.status_code == 429  # NFKC and case folding make it the same name
    owner = Client(REMOTE_ADDR="198.51.100.7")
    response = owner.post("/accounts/login/", {"username": name, "password": "right-password"})
    assert response.status_code == 302 and "_auth_user_id" in owner.session  # not locked out by the stranger
    settings.OPSITE_LOGIN_USER_GLOBAL_RATE_PER_MINUTE = 4  # guessing spread over many addresses is bounded too
    spread = [Client(REMOTE_ADDR=f"192.0.2.{n}").post("/accounts/login/", {"username": name, "password": "x"})
              for n in range(3)]  # fmt: skip
    assert [r.status_code for r in spread][-1] == 429


@pytest.mark.django_db(transaction=True)
@pytest.mark.processes
def test_forwarded_headers_are_believed_only_from_trusted_proxies(start_server, needs_redis):
    """A real uvicorn as shipped: rotating X-Forwarded-For does not reset the per-address login
    limit, and cannot make /metrics think the request is local; behind a trusted proxy the
    header names the client."""
    import httpx

    csrf = "c" * 32
    import uuid

    # a key space of its own: other tests' logins from 127.0.0.1 in this minute do not count here
    server = start_server({"OPSITE_LOGIN_RATE_PER_MINUTE": "5", "OPSITE_LOGIN_USER_RATE_PER_MINUTE": "1000",
                           "REDIS_PREFIX": f"forwarded-{uuid.uuid4().hex[:8]}"})  # fmt: skip
    statuses = [
        httpx.post(f"{server.url}/accounts/login/", data={"username": f"u{n}", "password": "x", "csrfmiddlewaretoken": csrf},
                   cookies={"csrftoken": csrf}, headers={"X-Forwarded-For": f"198.51.100.{n}"}, timeout=10).status_code
        for n in range(8)
    ]  # fmt: skip
    assert statuses[:5] == [200] * 5 and statuses[5:] == [429] * 3, statuses
    local = {"X-Forwarded-For": "127.0.0.1"}
    assert httpx.get(f"{server.url}/metrics", headers=local, timeout=10).status_code == 200  # the peer is local

    proxied = start_server({"OPSITE_TRUSTED_PROXIES": "127.0.0.1/32"})
    assert (
        httpx.get(f"{proxied.url}/metrics", headers={"X-Forwarded-For": "203.0.113.9"}, timeout=10).status_code == 401
    )
    spoofed = {"X-Forwarded-For": "127.0.0.1, 203.0.113.9"}  # the client wrote the left part
    assert httpx.get(f"{proxied.url}/metrics", headers=spoofed, timeout=10).status_code == 401
    assert httpx.get(f"{proxied.url}/metrics", timeout=10).status_code == 200  # the proxy itself, no header


@pytest.mark.django_db
def test_only_probes_and_metrics_are_exempt_from_the_https_redirect(settings):
    import ast

    from django.test import Client

    source = (ROOT / "opsite" / "settings" / "production.py").read_text()
    exempt = next(ast.literal_eval(node.value) for node in ast.walk(ast.parse(source))
                  if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "SECURE_REDIRECT_EXEMPT")  # fmt: skip
    settings.SECURE_SSL_REDIRECT, settings.SECURE_REDIRECT_EXEMPT = True, exempt
    client = Client()
    for path in ("/health", "/health/live", "/health/ready", "/metrics"):
        assert client.get(path).status_code != 301, path
    for path in ("/healthz", "/health-admin", "/metricsx", "/accounts/login/"):
        assert client.get(path).status_code == 301, path
