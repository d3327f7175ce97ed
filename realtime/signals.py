from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from .models import StaffMembership
from .services import access_revoked_publish


@receiver(post_delete, sender=StaffMembership, dispatch_uid="realtime.membership_deleted")
def membership_deleted(sender: Any, instance: StaffMembership, **kwargs: Any) -> None:
    restaurant_id, user_id = instance.restaurant_id, instance.user_id
    transaction.on_commit(lambda: access_revoked_publish(restaurant_ids=[restaurant_id], user_id=user_id))


@receiver(user_logged_out, dispatch_uid="realtime.user_logged_out")
def logged_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is None:
        return
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    restaurant_ids = list(StaffMembership.objects.filter(user=user).values_list("restaurant_id", flat=True))
    if restaurant_ids:
        access_revoked_publish(restaurant_ids=restaurant_ids, user_id=user.pk, session_key=session_key)
