"""Who may open what, generated from the URL configuration and the admin's registered actions:
a page or action added without a check fails here.

Every URL pattern must belong to one of the policies below; each policy is tried as anonymous,
as staff without any permission, as staff of another restaurant, and as the permitted user.
Every admin action must either need a permission beyond viewing, or be named as safe to run
with view permission alone."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

pytestmark = pytest.mark.django_db

PUBLIC = {"health", "health/live", "health/ready", "accounts/login/", "accounts/logout/"}
INGEST_TOKEN = {"api/v1/orders/events", "api/v1/metrics/frontend", "api/v1/errors/frontend"}
OPS_TOKEN_OR_STAFF = {"health/detailed", "health/dependencies", "health/stats", "metrics"}
RESTAURANT_STAFF = {"restaurants/<slug:slug>/", "api/v1/restaurants/<slug:slug>/orders/events"}
LOGGED_IN = {""}  # the list of restaurants one may watch: empty for a stranger
DASHBOARD = {
    "ops/",
    "ops/api/series",
    "ops/api/tables",
    "ops/api/live",
    "ops/api/slow-requests",
    "ops/restaurants/<slug:slug>/",
}
# admin actions that change nothing and reveal nothing beyond the rows the viewer can list
VIEW_SAFE_ACTIONS = {"explain_selected", "export_csv", "suggest_indexes"}  # read only (no trial index for them)


def patterns(resolvers: list[Any] | None = None, prefix: str = "") -> Iterator[str]:
    for entry in resolvers if resolvers is not None else get_resolver().url_patterns:
        if isinstance(entry, URLResolver):
            yield from patterns(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern)


def test_every_url_has_a_policy():
    site = [p for p in patterns() if not p.startswith("admin/")]
    known = PUBLIC | INGEST_TOKEN | OPS_TOKEN_OR_STAFF | RESTAURANT_STAFF | LOGGED_IN | DASHBOARD
    assert set(site) <= known, f"pages without a permission policy here: {sorted(set(site) - known)}"


@pytest.fixture
def people(make_staff, django_user_model) -> dict[str, Any]:
    mine, theirs = make_staff(slug="mine"), make_staff(slug="theirs")
    bare = django_user_model.objects.create_user("bare-staff", password="pw-123456", is_staff=True)
    viewer = django_user_model.objects.create_user("dash-viewer", password="pw-123456", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_dashboard"))
    clients = {"anonymous": Client()}
    for name, user in {"bare staff": bare, "other restaurant": theirs.user, "restaurant staff": mine.user,
                       "dashboard viewer": viewer}.items():  # fmt: skip
        client = Client()
        client.force_login(user)
        clients[name] = client
    return {"clients": clients, "mine": mine, "theirs": theirs}


def _get(client: Client, path: str) -> int:
    return client.get("/" + path.replace("<slug:slug>", "mine")).status_code


def test_restaurant_pages_open_only_to_that_restaurants_staff(people):
    for path in sorted(RESTAURANT_STAFF):
        codes = {who: _get(c, path) for who, c in people["clients"].items()}
        assert codes["restaurant staff"] == 200, (path, codes)
        for who in ("anonymous", "bare staff", "other restaurant", "dashboard viewer"):
            assert codes[who] in (302, 401, 403, 404), (path, who, codes)


def test_dashboard_pages_open_only_with_the_dashboard_permission(people):
    for path in sorted(DASHBOARD):
        codes = {who: _get(c, path) for who, c in people["clients"].items()}
        assert codes["dashboard viewer"] == 200, (path, codes)
        for who in ("anonymous", "bare staff", "other restaurant", "restaurant staff"):
            assert codes[who] in (302, 401, 403), (path, who, codes)


def test_ops_endpoints_need_staff_or_a_token(people, settings):
    settings.OPSITE_METRICS_ALLOWED_NETWORKS = []
    settings.OPS_API_TOKENS = ["ops-token-one", "ops-token-two"]
    for path in sorted(OPS_TOKEN_OR_STAFF):
        codes = {who: _get(c, path) for who, c in people["clients"].items()}
        assert codes["anonymous"] == 401 and codes["restaurant staff"] == 403, (path, codes)
        assert codes["bare staff"] not in (401, 403), (path, codes)
        with_token = Client().get("/" + path, HTTP_AUTHORIZATION="Bearer ops-token-two")
        assert with_token.status_code not in (401, 403), path
        for wrong in ("Bearer ops-token-three", "Bearer ", "Bearer ops-token-one-more"):
            assert Client().get("/" + path, HTTP_AUTHORIZATION=wrong).status_code == 401, (path, wrong)


def test_an_allow_listed_address_opens_metrics_and_nothing_else(people, settings):
    settings.OPSITE_METRICS_ALLOWED_NETWORKS = ["127.0.0.0/8"]  # the test client's own address
    anonymous = people["clients"]["anonymous"]
    for path in sorted(OPS_TOKEN_OR_STAFF):
        assert _get(anonymous, path) == (200 if path == "metrics" else 401), path


def test_ingest_endpoints_need_a_token(people):
    for path in sorted(INGEST_TOKEN):
        for who, client in people["clients"].items():
            response = client.post("/" + path, data="{}", content_type="application/json")
            assert response.status_code == 401, (path, who)


ADMIN_VIEWS = ["admin/monitoring/queryfingerprint/live/", "admin/backups/backup/back-up-now/",
               "admin/backups/restoredrill/drill-now/"]  # fmt: skip


def test_admin_pages_refuse_staff_without_the_permission(people):
    bare = people["clients"]["bare staff"]
    model_pages = [f"admin/{m._meta.app_label}/{m._meta.model_name}/" for m in admin.site._registry]
    for path in model_pages + ADMIN_VIEWS:
        response = bare.post("/" + path) if path.endswith("now/") else bare.get("/" + path)
        assert response.status_code == 403, (path, response.status_code)
    assert people["clients"]["anonymous"].get("/admin/").status_code == 302


def test_every_admin_action_needs_more_than_view_permission_unless_it_is_safe(django_user_model, rf):
    viewer = django_user_model.objects.create_user("view-everything", password="pw-123456", is_staff=True)
    viewer.user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
    viewer = django_user_model.objects.get(pk=viewer.pk)
    for model, model_admin in admin.site._registry.items():
        request = rf.get("/")
        request.user = viewer
        offered = set(model_admin.get_actions(request))
        unsafe = offered - VIEW_SAFE_ACTIONS
        assert not unsafe, f"{model.__name__}: actions open to view-only staff: {sorted(unsafe)}"


def test_a_view_only_user_cannot_start_a_backup_or_a_verification(django_user_model, needs_postgres):
    from backups.models import Backup

    viewer = django_user_model.objects.create_user("backup-viewer", password="pw-123456", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_backup"))
    client = Client()
    client.force_login(viewer)
    backup = Backup.objects.create(status=Backup.Status.SUCCEEDED, engine="postgresql", format="custom")
    assert client.post("/admin/backups/backup/back-up-now/").status_code == 403
    page = client.get("/admin/backups/backup/").content.decode()
    assert "Back up now" not in page and "verify_selected" not in page
    response = client.post("/admin/backups/backup/", {"action": "verify_selected", "_selected_action": [backup.pk]})
    assert response.status_code in (200, 302)
    assert Backup.objects.get(pk=backup.pk).status == Backup.Status.SUCCEEDED  # nothing was queued or run


def test_only_who_may_run_backups_starts_a_restore_drill(django_user_model, needs_postgres):
    from backups.models import RestoreDrill

    viewer = django_user_model.objects.create_user("drill-viewer", password="pw-123456", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_restoredrill"))
    client = Client()
    client.force_login(viewer)
    assert "Run a restore drill now" not in client.get("/admin/backups/restoredrill/").content.decode()
    assert client.post("/admin/backups/restoredrill/drill-now/").status_code == 403
    assert client.get("/admin/backups/restoredrill/drill-now/").status_code == 403  # and never by GET
    viewer.user_permissions.add(Permission.objects.get(codename="run_backup"))
    client.force_login(django_user_model.objects.get(pk=viewer.pk))
    assert "Run a restore drill now" in client.get("/admin/backups/restoredrill/").content.decode()
    response = client.post("/admin/backups/restoredrill/drill-now/", follow=True)
    assert response.status_code == 200 and "A restore drill is queued" in response.content.decode()
    assert not RestoreDrill.objects.filter(status=RestoreDrill.Status.PASSED).exists()  # no base backup: no drill


def test_dependency_urls_are_shown_without_credentials(admin_client, settings):
    settings.OPSITE_DEPENDENCIES = {"payments": "http://svc:S3cretPass@127.0.0.1:9/h?api_key=abc123&v=1"}
    body = admin_client.get("/health/dependencies").content.decode()
    assert "S3cretPass" not in body and "abc123" not in body
    url = json.loads(body)["dependencies"][0]["url"]
    assert url.startswith("http://svc:") and "@127.0.0.1:9/h?" in url and "v=1" in url


# not written whole anywhere, so no source line or local variable on the error page shows them
PASSWORDS = ("Pg-" + "S3cret", "Rabbit-" + "S3cret")


@pytest.fixture
def urls_with_passwords(settings: Any) -> None:
    settings.DATABASE_URL = f"postgres://opsite:{PASSWORDS[0]}@db:5432/opsite"
    settings.CELERY_BROKER_URL = f"amqp://guest:{PASSWORDS[1]}@rabbit:5672//"


@pytest.mark.usefixtures("urls_with_passwords")
def test_error_pages_mask_urls_with_passwords(rf):
    import sys

    from django.views.debug import ExceptionReporter

    try:
        raise RuntimeError("boom")
    except RuntimeError:
        html = ExceptionReporter(rf.get("/"), *sys.exc_info()).get_traceback_html()
    assert not [s for s in PASSWORDS if s in html]
    assert "db:5432/opsite" in html  # the rest of the URL still helps
