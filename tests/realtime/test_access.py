"""Who may view a restaurant's board, its catch-up and its feed, read in one statement."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser

from realtime.selectors import restaurant_for_viewer, restaurants_for_user, user_can_view

pytestmark = pytest.mark.django_db


def test_a_viewers_restaurant_and_membership_are_one_query(make_staff, django_user_model,
                                                           django_assert_num_queries):  # fmt: skip
    mine, other = make_staff(), make_staff()
    boss = django_user_model.objects.create_user("boss", is_superuser=True)
    gone = make_staff()
    gone.user.is_active = False
    gone.user.save()
    with django_assert_num_queries(1):
        assert restaurant_for_viewer(mine.user, mine.restaurant.slug) == mine.restaurant
    with django_assert_num_queries(1):
        assert restaurant_for_viewer(mine.user, other.restaurant.slug) is None
    with django_assert_num_queries(1):
        assert restaurant_for_viewer(mine.user, "no-such-place") is None
    with django_assert_num_queries(1):
        assert restaurant_for_viewer(boss, other.restaurant.slug) == other.restaurant
    with django_assert_num_queries(0):
        assert restaurant_for_viewer(AnonymousUser(), mine.restaurant.slug) is None
        assert restaurant_for_viewer(gone.user, gone.restaurant.slug) is None
    # the check on a restaurant already read, and the restaurant list, say the same
    allowed_to = {mine.user: {mine.restaurant}, boss: {mine.restaurant, other.restaurant, gone.restaurant}}
    for user in (mine.user, boss, gone.user, AnonymousUser()):
        listed = set(restaurants_for_user(user))
        for staff in (mine, other, gone):
            allowed = staff.restaurant in allowed_to.get(user, set())
            assert user_can_view(user, staff.restaurant) is allowed
            assert (restaurant_for_viewer(user, staff.restaurant.slug) is not None) is allowed
            assert (staff.restaurant in listed) is allowed
