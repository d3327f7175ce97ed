from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from .models import OrderEvent, Restaurant, StaffMembership
from .services import membership_remove, restaurant_rotate_token


class MembershipInline(admin.TabularInline):
    model = StaffMembership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Restaurant)
class RestaurantAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "timezone", "last_seq", "ingest_token_prefix", "created_at"]
    search_fields = ["slug", "name"]
    readonly_fields = ["last_seq", "epoch", "ingest_token_prefix", "created_at"]
    inlines = [MembershipInline]
    actions = ["rotate_token"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Created with `manage.py create_restaurant`, which hands out the token once.
        return False

    @admin.action(description="Rotate the ingest token (the old one stops working)", permissions=["change"])
    def rotate_token(self, request: HttpRequest, queryset: QuerySet[Restaurant]) -> None:
        for restaurant in queryset:
            token = restaurant_rotate_token(restaurant=restaurant)
            self.message_user(request, f"{restaurant.slug}: new ingest token {token}", messages.WARNING)


@admin.register(StaffMembership)
class StaffMembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "restaurant", "role", "created_at"]
    list_filter = ["role", "restaurant"]
    search_fields = ["user__username", "restaurant__slug"]
    autocomplete_fields = ["user", "restaurant"]

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[StaffMembership]) -> None:
        # One by one, so each removal closes that member's open sockets.
        for membership in queryset:
            membership_remove(membership=membership)


class PaymentMethodFilter(admin.SimpleListFilter):
    """Payment methods as sent; events that name none (most but the payment) are "none", not a blank link."""

    title = "payment method"
    parameter_name = "payment_method"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        methods = OrderEvent.objects.order_by("payment_method").values_list("payment_method", flat=True).distinct()
        return [(method or "-", method or "none") for method in methods]

    def queryset(self, request: HttpRequest, queryset: QuerySet[OrderEvent]) -> QuerySet[OrderEvent]:
        value = self.value()
        if value is None:
            return queryset
        return queryset.filter(payment_method="" if value == "-" else value)


@admin.register(OrderEvent)
class OrderEventAdmin(admin.ModelAdmin):
    list_display = [
        "restaurant",
        "seq",
        "type",
        "order_id",
        "total_amount",
        "payment_method",
        "occurred_at",
        "published_at",
    ]
    list_filter = ["type", "restaurant", PaymentMethodFilter]
    search_fields = ["order_id", "idempotency_key"]
    date_hierarchy = "occurred_at"
    list_select_related = ["restaurant"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
