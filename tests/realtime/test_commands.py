from __future__ import annotations

import io
import subprocess
import sys

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from realtime.models import Restaurant, StaffMembership
from realtime.selectors import restaurant_for_token
from tests.conftest import ROOT, server_env

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_restaurant_prints_a_working_token_once():
    output = run("create_restaurant", "pizza-place", "--name", "Pizza Place", "--timezone", "Europe/Rome")
    token = output.split("ingest token: ")[1].split()[0]
    restaurant = Restaurant.objects.get(slug="pizza-place")
    assert restaurant.timezone == "Europe/Rome"
    assert restaurant_for_token(token) == restaurant
    assert token not in restaurant.ingest_token_hash


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Bad_Slug", "--name", "x"], "invalid slug"),
        (["ok-slug", "--name", "  "], "name must not be empty"),
        (["ok-slug", "--name", "x", "--timezone", "Mars/Base"], "unknown time zone"),
    ],
)
def test_create_restaurant_refuses_bad_input(args, message):
    with pytest.raises(CommandError, match=message):
        run("create_restaurant", *args)
    assert not Restaurant.objects.exists()


def test_create_restaurant_refuses_a_duplicate_slug():
    run("create_restaurant", "dup", "--name", "One")
    with pytest.raises(CommandError, match="exists already"):
        run("create_restaurant", "dup", "--name", "Two")
    assert Restaurant.objects.get(slug="dup").name == "One"


def test_add_staff_creates_the_user_and_grants_access():
    run("create_restaurant", "cafe", "--name", "Cafe")
    output = run("add_staff", "cafe", "maria", "--password", "s3cret-pass", "--role", "manager")
    assert "created user maria is manager of cafe" in output
    user = get_user_model().objects.get(username="maria")
    assert user.check_password("s3cret-pass")
    assert StaffMembership.objects.get(user=user).role == "manager"
    run("add_staff", "cafe", "maria")
    assert StaffMembership.objects.filter(user=user).count() == 1


def test_add_staff_refuses_an_unknown_restaurant():
    with pytest.raises(CommandError, match="no restaurant with slug 'nowhere'"):
        run("add_staff", "nowhere", "maria")
    assert not get_user_model().objects.filter(username="maria").exists()


def test_seed_demo_refuses_without_debug_and_works_with_force():
    with pytest.raises(CommandError, match="DEBUG off"):
        run("seed_demo")
    output = run("seed_demo", "--force")
    assert "login admin /" in output and "trattoria" in output
    assert Restaurant.objects.filter(slug="trattoria").get().events.count() > 0
    run("seed_demo", "--force")  # a second run changes nothing and does not fail
    assert Restaurant.objects.count() == 2


def test_a_failing_command_exits_non_zero_with_one_line():
    result = subprocess.run(
        [sys.executable, "manage.py", "add_staff", "nowhere", "someone"],
        cwd=ROOT, env=server_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert result.stderr.strip() == "CommandError: no restaurant with slug 'nowhere'"
