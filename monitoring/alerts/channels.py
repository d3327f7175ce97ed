"""How a notification reaches people: one small transport per channel kind."""

from __future__ import annotations

from typing import Any, Protocol

import httpx
from django.conf import settings
from django.core.mail import EmailMessage, get_connection

from monitoring.alerts.models import NotificationChannel


def summary(payload: dict[str, Any]) -> str:
    if payload.get("summary"):  # a message that is not a threshold crossed (a deploy's outcome)
        return str(payload["summary"])
    labels = ", ".join(f"{k}={v}" for k, v in payload["labels"].items())
    value = "no value" if payload["value"] is None else f"{payload['value']:.4g} {payload['unit']}".strip()
    head = "RESOLVED" if payload["status"] == "resolved" else payload["severity"].upper()
    where = f" [{labels}]" if labels else ""
    return (f"[{head}] {payload['rule']}{where}: {payload['metric_label']} is {value} "
            f"(threshold {payload['comparison']} {payload['threshold']:g})")  # fmt: skip


class Transport(Protocol):
    def send(self, channel: NotificationChannel, payload: dict[str, Any]) -> None: ...


class EmailTransport:
    def send(self, channel: NotificationChannel, payload: dict[str, Any]) -> None:
        recipients = [a.strip() for a in channel.target.split(",") if a.strip()]
        body = summary(payload) + "\n\n" + (payload.get("description") or "") + "\n\n" + \
            "\n".join(f"{k}: {v}" for k, v in payload.items() if k not in ("description", "labels"))  # fmt: skip
        connection = get_connection(timeout=settings.OPSITE_ALERT_SEND_TIMEOUT_S)
        EmailMessage(summary(payload), body, settings.DEFAULT_FROM_EMAIL, recipients, connection=connection).send()


class SlackTransport:
    def send(self, channel: NotificationChannel, payload: dict[str, Any]) -> None:
        timeout = settings.OPSITE_ALERT_SEND_TIMEOUT_S
        response = httpx.post(channel.target, json={"text": summary(payload)}, timeout=timeout)
        response.raise_for_status()


class WebhookTransport:
    def send(self, channel: NotificationChannel, payload: dict[str, Any]) -> None:
        response = httpx.post(channel.target, json=payload, timeout=settings.OPSITE_ALERT_SEND_TIMEOUT_S,
                              headers={"User-Agent": f"opsite/{settings.OPSITE_VERSION}"})  # fmt: skip
        response.raise_for_status()


TRANSPORTS: dict[str, Transport] = {
    NotificationChannel.Kind.EMAIL: EmailTransport(),
    NotificationChannel.Kind.SLACK: SlackTransport(),
    NotificationChannel.Kind.WEBHOOK: WebhookTransport(),
}
