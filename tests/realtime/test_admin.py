from __future__ import annotations

import pytest

from realtime.models import Restaurant, StaffMembership
from realtime.selectors import restaurant_for_token

from .conftest import event, ingest_sync

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, django_user_model):
    admin = django_user_model.objects.create_superuser("boss", "b@example.com", "pw")
    client.force_login(admin)
    return client


def test_admin_pages_render(admin_client, make_staff):
    staff = make_staff()
    ingest_sync(staff.restaurant, event("A1"))
    for url in [
        "/admin/",
        "/admin/realtime/restaurant/",
        f"/admin/realtime/restaurant/{staff.restaurant.pk}/change/",
        "/admin/realtime/staffmembership/",
        "/admin/realtime/orderevent/",
        "/admin/django_celery_beat/periodictask/",
    ]:
        assert admin_client.get(url).status_code == 200, url


def test_token_rotation_action_replaces_the_token(admin_client, make_staff):
    staff = make_staff()
    response = admin_client.post(
        "/admin/realtime/restaurant/",
        {"action": "rotate_token", "_selected_action": [staff.restaurant.pk]},
        follow=True,
    )
    message = next(str(m) for m in response.context["messages"])
    new_token = message.split("new ingest token ")[1]
    assert restaurant_for_token(staff.token) is None
    assert restaurant_for_token(new_token) == Restaurant.objects.get(pk=staff.restaurant.pk)


def test_order_events_are_read_only_in_admin(admin_client, make_staff):
    staff = make_staff()
    ingest_sync(staff.restaurant, event("A1"))
    event_id = staff.restaurant.events.get().pk
    page = admin_client.get(f"/admin/realtime/orderevent/{event_id}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content


def test_deleting_memberships_in_admin_removes_them(admin_client, make_staff):
    staff = make_staff()
    membership = StaffMembership.objects.get(user=staff.user)
    admin_client.post(
        "/admin/realtime/staffmembership/",
        {"action": "delete_selected", "_selected_action": [membership.pk], "post": "yes"},
    )
    assert not StaffMembership.objects.filter(pk=membership.pk).exists()
