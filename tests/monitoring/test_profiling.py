from __future__ import annotations

import json
import marshal
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from monitoring.health.tasks import beat_heartbeat_task
from monitoring.models import Profile, ProfileArm
from monitoring.requests.profiling import profile_retention, watcher

pytestmark = pytest.mark.django_db


@pytest.fixture
def profiler_user(django_user_model):
    user = django_user_model.objects.create_user("perf", password="x", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="profile_requests"))
    return user


def test_a_permitted_staff_member_profiles_one_request(client, profiler_user):
    client.force_login(profiler_user)
    response = client.get("/health/live", HTTP_X_OPSITE_PROFILE="pyinstrument", HTTP_X_REQUEST_ID="profiled-req-01")
    assert response.status_code == 200
    profile = Profile.objects.get(pk=response["X-Opsite-Profile-Id"])
    assert profile.kind == "request" and profile.name == "GET /health/live" and profile.request_id == "profiled-req-01"
    assert profile.user == profiler_user and profile.duration_ms > 0 and "<html" in profile.html.lower()
    assert json.loads(profile.speedscope)["$schema"].startswith("https://www.speedscope.app")


def test_cprofile_keeps_a_loadable_pstats_file(client, profiler_user, make_staff):
    staff = make_staff()
    client.force_login(profiler_user)
    profiler_user.is_superuser = True
    profiler_user.save()
    response = client.get(f"/restaurants/{staff.restaurant.slug}/?_profile=cprofile")
    assert response.status_code == 200
    profile = Profile.objects.get(pk=response["X-Opsite-Profile-Id"])
    assert profile.profiler == "cprofile" and profile.queries > 0 and "cumulative" in profile.html
    assert isinstance(marshal.loads(bytes(profile.pstats)), dict)  # noqa: S302  (our own bytes)


def test_profiling_is_refused_to_everyone_else(client, django_user_model):
    assert client.get("/health/live?_profile=1").status_code == 403
    assert client.get("/health/live", HTTP_X_OPSITE_PROFILE="pyinstrument").status_code == 403
    client.force_login(django_user_model.objects.create_user("staffer", password="x", is_staff=True))
    assert client.get("/health/live", HTTP_X_OPSITE_PROFILE="pyinstrument").status_code == 403
    assert not Profile.objects.exists()
    assert client.get("/health/live").status_code == 200


def test_an_unknown_profiler_is_a_clear_error(client, profiler_user):
    client.force_login(profiler_user)
    response = client.get("/health/live", HTTP_X_OPSITE_PROFILE="perf")
    assert response.status_code == 400 and "profiler must be one of" in response.json()["message"]


@pytest.mark.django_db(transaction=True)  # committed, as the watcher's own thread reads the arms too
def test_an_armed_route_profiles_its_next_n_requests_only(client):
    ProfileArm.objects.create(target="route", name="GET /health/live", remaining=2,
                              expires_at=timezone.now() + timedelta(minutes=5))  # fmt: skip
    watcher.refresh()
    ids = [client.get("/health/live").get("X-Opsite-Profile-Id") for _ in range(4)]
    assert ids[0] and ids[1] and ids[2] is None and ids[3] is None
    assert Profile.objects.filter(name="GET /health/live").count() == 2
    assert client.get("/health").get("X-Opsite-Profile-Id") is None


def test_an_armed_task_profiles_its_next_run(client):
    ProfileArm.objects.create(target="task", name="monitoring.beat_heartbeat", remaining=1, profiler="cprofile",
                              expires_at=timezone.now() + timedelta(minutes=5))  # fmt: skip
    watcher.refresh()
    beat_heartbeat_task.apply()
    beat_heartbeat_task.apply()
    profiles = Profile.objects.filter(kind="task")
    assert profiles.count() == 1 and profiles.get().name == "monitoring.beat_heartbeat"


def test_admin_shows_the_call_tree_and_downloads(client, profiler_user):
    client.force_login(profiler_user)
    pk = client.get("/health/live", HTTP_X_OPSITE_PROFILE="pyinstrument")["X-Opsite-Profile-Id"]
    assert client.get("/admin/monitoring/profile/").status_code == 200
    tree = client.get(f"/admin/monitoring/profile/{pk}/calltree/")
    assert tree.status_code == 200 and b"pyinstrument" in tree.content.lower()
    # nothing from elsewhere: no web font, and a policy that would refuse one
    assert b"fonts.googleapis.com" not in tree.content
    assert "default-src 'none'" in tree["Content-Security-Policy"]
    download = client.get(f"/admin/monitoring/profile/{pk}/speedscope/")
    assert download["Content-Disposition"].endswith('.speedscope.json"')


def test_retention_keeps_the_newest_and_drops_the_old(settings):
    settings.OPSITE_PROFILE_KEEP = 3
    for n in range(5):
        Profile.objects.create(kind="request", name=f"r{n}", profiler="cprofile", duration_ms=1)
    Profile.objects.filter(name="r4").update(created_at=timezone.now() - timedelta(days=30))
    profile_retention()
    assert sorted(Profile.objects.values_list("name", flat=True)) == ["r1", "r2", "r3"]


def test_profiles_over_the_time_or_size_limit_are_not_kept(client, profiler_user, settings):
    client.force_login(profiler_user)
    settings.OPSITE_PROFILE_MAX_S = 0.0
    slow = Profile.objects.get(
        pk=client.get("/health/live", HTTP_X_OPSITE_PROFILE="pyinstrument")["X-Opsite-Profile-Id"]
    )
    assert slow.truncated and "over the 0 s limit" in slow.html and not slow.speedscope
    settings.OPSITE_PROFILE_MAX_S = 30.0
    settings.OPSITE_PROFILE_MAX_BYTES = 100
    big = Profile.objects.get(pk=client.get("/health/live", HTTP_X_OPSITE_PROFILE="cprofile")["X-Opsite-Profile-Id"])
    assert big.truncated and "larger than 100 bytes" in big.html and bytes(big.pstats) == b""
