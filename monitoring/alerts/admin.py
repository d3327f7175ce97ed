"""Admin for rules, alerts (acknowledge, silence), silences, mute windows, channels and the
notification log. Imported by monitoring/admin.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from common.formats import duration, measurement
from common.resilience import circuit_reset
from monitoring.admin_base import ReadOnlyAdmin
from monitoring.alerts.catalog import CATALOG
from monitoring.alerts.delivery import channel_circuit, channel_circuit_reset
from monitoring.alerts.metrics import METRICS
from monitoring.alerts.models import Alert, AlertRule, MuteWindow, Notification, NotificationChannel, Silence
from monitoring.health.dependencies import all_circuits


def _unit(metric: str) -> str:
    info = CATALOG.get(metric)
    return info.unit if info else ""


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = ["name", "metric", "scope", "threshold_shown", "recovery_shown", "for_shown", "severity",
                    "enabled"]  # fmt: skip
    list_filter = ["enabled", "severity", "metric", "scope"]
    list_editable = ["enabled"]
    search_fields = ["name", "description"]
    filter_horizontal = ["channels"]

    @admin.display(description="fires when", ordering="threshold")
    def threshold_shown(self, rule: AlertRule) -> str:
        return f"{rule.get_comparison_display()} {measurement(rule.threshold, _unit(rule.metric))}"

    @admin.display(description="recovers at", ordering="recovery_threshold")
    def recovery_shown(self, rule: AlertRule) -> str:
        return measurement(rule.recovery_threshold, _unit(rule.metric))

    @admin.display(description="for", ordering="for_s")
    def for_shown(self, rule: AlertRule) -> str:
        return duration(rule.for_s)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        from django import forms

        choices = [(m.key, f"{m.label} ({m.unit}; {', '.join(m.scopes)})") for m in METRICS.values()]
        form.base_fields["metric"] = forms.ChoiceField(choices=choices)
        return form


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = ["rule", "labels", "state", "value_shown", "fired_at", "resolved_at", "held", "acknowledged_by"]
    list_filter = ["state", "rule__severity", "held", "rule"]
    list_select_related = ["rule"]
    actions = ["acknowledge", "silence_2h", "silence_24h"]

    @admin.display(description="value", ordering="value")
    def value_shown(self, alert: Alert) -> str:
        return measurement(alert.value, _unit(alert.rule.metric))

    def has_acknowledge_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("monitoring.change_alert"))

    def has_silence_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("monitoring.add_silence"))

    @admin.action(description="Acknowledge (no repeat notifications until resolved)", permissions=["acknowledge"])
    def acknowledge(self, request: HttpRequest, queryset: QuerySet[Alert]) -> None:
        n = queryset.filter(state=Alert.State.FIRING).update(acknowledged_at=timezone.now(),
                                                              acknowledged_by=request.user.get_username())  # fmt: skip
        messages.success(request, f"{n} firing alert(s) acknowledged")

    def _silence(self, request: HttpRequest, queryset: QuerySet[Alert], hours: int) -> None:
        now = timezone.now()
        for alert in queryset.select_related("rule"):
            Silence.objects.create(matchers={"rule": alert.rule.name, **alert.labels}, starts_at=now,
                                   ends_at=now + timedelta(hours=hours), reason="silenced from the alert list",
                                   created_by=request.user.get_username())  # fmt: skip
        messages.success(request, f"{queryset.count()} alert(s) silenced for {hours} h")

    @admin.action(description="Silence for 2 hours", permissions=["silence"])
    def silence_2h(self, request: HttpRequest, queryset: QuerySet[Alert]) -> None:
        self._silence(request, queryset, 2)

    @admin.action(description="Silence for 24 hours", permissions=["silence"])
    def silence_24h(self, request: HttpRequest, queryset: QuerySet[Alert]) -> None:
        self._silence(request, queryset, 24)


@admin.register(Silence)
class SilenceAdmin(admin.ModelAdmin):
    list_display = ["matchers", "starts_at", "ends_at", "reason", "created_by"]
    readonly_fields = ["created_by"]

    def save_model(self, request: HttpRequest, obj: Silence, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user.get_username()
        super().save_model(request, obj, form, change)


@admin.register(MuteWindow)
class MuteWindowAdmin(admin.ModelAdmin):
    list_display = ["matchers", "weekdays", "start_time", "end_time", "timezone", "reason"]


@admin.register(NotificationChannel)
class NotificationChannelAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "enabled", "circuit", "consecutive_failures", "open_until"]
    list_filter = ["kind", "enabled"]
    actions = ["close_circuits"]

    @admin.display(description="circuit")
    def circuit(self, obj: NotificationChannel) -> str:
        return channel_circuit(obj, timezone.now()).replace("_", "-")

    @admin.action(description="Close the circuit (the channel was fixed: send again now)", permissions=["change"])
    def close_circuits(self, request: HttpRequest, queryset: QuerySet[NotificationChannel]) -> None:
        for channel in queryset:
            channel_circuit_reset(channel)
        self.message_user(request, f"closed the circuit of {queryset.count()} channel(s)", messages.SUCCESS)

    def get_urls(self) -> list[Any]:
        extra = [path("circuits/", self.admin_site.admin_view(self.circuits_view), name="monitoring_circuits")]
        return extra + super().get_urls()

    def circuits_view(self, request: HttpRequest) -> HttpResponse:
        """Every circuit breaker (dependencies, the S3 backup store, the channels) with a reset."""
        if request.method == "POST":
            if not self.has_change_permission(request):
                raise PermissionDenied("closing a circuit needs the change_notificationchannel permission")
            name = request.POST.get("circuit", "")
            known = {row["name"] for row in all_circuits()}
            if name not in known:
                self.message_user(request, f"no circuit named {name!r}", messages.ERROR)
            elif name.startswith("channel:"):
                for channel in NotificationChannel.objects.filter(name=name.removeprefix("channel:")):
                    channel_circuit_reset(channel)
                self.message_user(request, f"closed {name}", messages.SUCCESS)
            else:
                circuit_reset(name)
                self.message_user(request, f"closed {name}", messages.SUCCESS)
            return HttpResponseRedirect(request.path)
        if not self.has_view_permission(request):
            raise PermissionDenied("viewing circuits needs the view_notificationchannel permission")
        rows = [{**row, "open_until": _moment(row["open_until"])} for row in all_circuits()]
        context = {**self.admin_site.each_context(request), "title": "Circuit breakers", "circuits": rows,
                   "can_reset": self.has_change_permission(request)}  # fmt: skip
        return TemplateResponse(request, "admin/monitoring/circuits.html", context)


def _moment(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return timezone.localtime(datetime.fromtimestamp(epoch, tz=UTC)).strftime("%Y-%m-%d %H:%M:%S %Z")


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "kind", "alert", "channel", "status", "attempts", "sent_at", "reason", "last_error"]
    list_filter = ["status", "kind", "channel"]
    list_select_related = ["alert__rule", "channel"]
    date_hierarchy = "created_at"
