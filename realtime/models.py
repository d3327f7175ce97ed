from __future__ import annotations

import secrets
import zoneinfo
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q


def new_epoch() -> str:
    return secrets.token_hex(6)


class Restaurant(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    timezone = models.CharField(max_length=64, default="UTC")
    currency = models.CharField(
        max_length=3, blank=True, default="", help_text="ISO 4217 code shown on amounts whose events name none (EUR)"
    )
    ingest_token_hash = models.CharField(max_length=64, unique=True, editable=False)
    ingest_token_prefix = models.CharField(max_length=16, editable=False)
    # The stream: the last seq handed out, and the epoch that seqs are counted in.
    last_seq = models.BigIntegerField(default=0, editable=False)
    epoch = models.CharField(max_length=16, default=new_epoch, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    # Ticket times, as a kitchen display keeps them: an open order (no paid, completed or
    # cancelled event yet) is late this long past its expected time, and very late after longer.
    ticket_expected_s = models.PositiveIntegerField(
        default=900, help_text="seconds an order is expected to take from its first event"
    )
    ticket_late_after_s = models.PositiveIntegerField(
        default=300, help_text="an open order this many seconds past its expected time is late (amber)"
    )
    ticket_very_late_after_s = models.PositiveIntegerField(
        default=420, help_text="an open order this many seconds past its expected time is very late (red)"
    )

    # Service levels: opening hours (in its time zone) are the time its boards are expected to be
    # connected (without them that objective is not measured); empty objectives take the defaults.
    opens_at = models.TimeField(null=True, blank=True, help_text="opening time, local (empty: boards-connected "
                                "objective not measured)")  # fmt: skip
    closes_at = models.TimeField(null=True, blank=True, help_text="closing time, local (before opens_at: overnight)")
    slo_delivery_objective = models.FloatField(
        null=True, blank=True, help_text="share of orders on a board within the delivery time (default 0.99)"
    )
    slo_connected_objective = models.FloatField(
        null=True, blank=True, help_text="share of opening hours with a board connected (default 0.999)"
    )

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    # Written only by the ingest's own UPDATE (last_seq) and a restore (epoch): a form or script
    # that loaded the row earlier must not write its old values back over orders taken since.
    STREAM_FIELDS = ("last_seq", "epoch")

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding and kwargs.get("update_fields") is None:
            kwargs["update_fields"] = [f.name for f in self._meta.concrete_fields
                                       if not f.primary_key and f.name not in self.STREAM_FIELDS]  # fmt: skip
        super().save(*args, **kwargs)

    def clean(self) -> None:
        if self.currency and not (len(self.currency) == 3 and self.currency.isalpha() and self.currency.isupper()):
            raise ValidationError({"currency": "a three-letter ISO 4217 code in capitals, e.g. EUR"})
        if self.ticket_very_late_after_s <= self.ticket_late_after_s:
            raise ValidationError({"ticket_very_late_after_s": "must be more than the late threshold"})
        if (self.opens_at is None) != (self.closes_at is None):
            raise ValidationError({"closes_at": "give both opening and closing times, or neither (not measured)"})
        for name in ("slo_delivery_objective", "slo_connected_objective"):
            value = getattr(self, name)
            if value is not None and not 0 < value < 1:
                raise ValidationError({name: "an objective is a share between 0 and 1, e.g. 0.99"})

    def open_at(self, moment: datetime) -> bool:
        """Whether ``moment`` falls in its opening hours (never, without them)."""
        if self.opens_at is None or self.closes_at is None:
            return False
        local = moment.astimezone(zoneinfo.ZoneInfo(self.timezone)).time()
        if self.opens_at <= self.closes_at:
            return self.opens_at <= local < self.closes_at
        return local >= self.opens_at or local < self.closes_at  # open past midnight


class StaffMembership(models.Model):
    class Role(models.TextChoices):
        STAFF = "staff", "Staff"
        MANAGER = "manager", "Manager"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    restaurant = models.ForeignKey(Restaurant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.STAFF)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "restaurant"], name="membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.restaurant} ({self.role})"


class OrderEvent(models.Model):
    class Type(models.TextChoices):
        CREATED = "order.created"
        UPDATED = "order.updated"
        PAID = "order.paid"
        CANCELLED = "order.cancelled"
        COMPLETED = "order.completed"

    restaurant = models.ForeignKey(Restaurant, on_delete=models.CASCADE, related_name="events")
    seq = models.BigIntegerField()
    epoch = models.CharField(max_length=16)
    type = models.CharField(max_length=32, choices=Type.choices)
    order_id = models.CharField(max_length=64)
    idempotency_key = models.CharField(max_length=128, null=True, blank=True)
    total_amount = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3, blank=True, default="")
    items_count = models.PositiveIntegerField()
    payment_method = models.CharField(max_length=32, blank=True, default="")
    table = models.CharField(max_length=32, blank=True, default="")
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)
    data = models.JSONField(default=dict, blank=True)
    trace_id = models.CharField(max_length=32, blank=True, default="")  # of the request that sent it (W3C)
    # Outbox: null until the event has been handed to the channel layer.
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["restaurant_id", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["restaurant", "seq"], name="order_event_seq_unique"),
            models.UniqueConstraint(
                fields=["restaurant", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="order_event_idempotency_unique",
            ),
        ]
        indexes = [
            models.Index(fields=["restaurant", "occurred_at"], name="order_event_day_idx"),
            models.Index(
                fields=["received_at"], condition=Q(published_at__isnull=True), name="order_event_unpublished_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.restaurant_id}#{self.seq} {self.type} {self.order_id}"
