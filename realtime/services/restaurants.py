from __future__ import annotations

import hashlib
import re
import secrets
import zoneinfo

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from ..models import Restaurant, StaffMembership

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
TOKEN_PREFIX = "opk_"  # noqa: S105  (a marker, not a secret)


class RestaurantError(Exception):
    """A request about restaurants or staff that cannot be carried out; the message says why."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token() -> tuple[str, str, str]:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, token_hash(token), token[: len(TOKEN_PREFIX) + 6]


def restaurant_create(*, slug: str, name: str, timezone: str = "UTC") -> tuple[Restaurant, str]:
    """Create a restaurant; return it and its ingest token, which is stored only as a hash."""
    if not SLUG_RE.match(slug):
        raise RestaurantError(f"invalid slug {slug!r}: use lowercase letters, digits and inner hyphens")
    if not name.strip():
        raise RestaurantError("the name must not be empty")
    if timezone not in zoneinfo.available_timezones():
        raise RestaurantError(f"unknown time zone {timezone!r}")
    token, digest, prefix = _new_token()
    with transaction.atomic():
        if Restaurant.objects.select_for_update().filter(slug=slug).exists():
            raise RestaurantError(f"a restaurant with slug {slug!r} exists already")
        restaurant = Restaurant.objects.create(
            slug=slug, name=name.strip(), timezone=timezone, ingest_token_hash=digest, ingest_token_prefix=prefix
        )
    return restaurant, token


def restaurant_rotate_token(*, restaurant: Restaurant) -> str:
    token, digest, prefix = _new_token()
    Restaurant.objects.filter(pk=restaurant.pk).update(ingest_token_hash=digest, ingest_token_prefix=prefix)
    restaurant.ingest_token_hash, restaurant.ingest_token_prefix = digest, prefix
    return token


def staff_add(
    *, slug: str, username: str, password: str | None = None, role: str = StaffMembership.Role.STAFF
) -> tuple[StaffMembership, bool]:
    """Grant a user (created if needed) access to a restaurant; return the membership and if the user is new."""
    if role not in StaffMembership.Role.values:
        raise RestaurantError(f"unknown role {role!r}: use one of {', '.join(StaffMembership.Role.values)}")
    restaurant = Restaurant.objects.filter(slug=slug).first()
    if restaurant is None:
        raise RestaurantError(f"no restaurant with slug {slug!r}")
    user_model = get_user_model()
    with transaction.atomic():
        user: AbstractBaseUser | None = user_model.objects.filter(username=username).first()
        created = user is None
        if user is None:
            user = user_model(username=username)
            user.full_clean(exclude=["password"])
            if password:
                user.set_password(password)
            else:
                user.set_unusable_password()
            user.save()
        elif password:
            user.set_password(password)
            user.save(update_fields=["password"])
        membership, _ = StaffMembership.objects.update_or_create(
            user=user, restaurant=restaurant, defaults={"role": role}
        )
    return membership, created


def membership_remove(*, membership: StaffMembership) -> None:
    # Open sockets are closed by the post_delete signal, after commit.
    membership.delete()
