"""Evaluating alert rules: inactive → pending → firing → resolved, with no-data as its own state.

Every state change is a compare-and-set on the alert's version, so when two evaluators run at
once exactly one of them makes each transition, and only that one writes its notifications
(which are unique per alert version, kind and channel besides). A rule watching something
stored in the database is held while the database check fails: its alerts keep their state
and nothing about them is sent, instead of every such rule turning to no-data at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from monitoring.alerts.matching import Quiet
from monitoring.alerts.metrics import METRICS, Labels, Reading, Values
from monitoring.alerts.models import Alert, AlertRule, Notification
from monitoring.alerts.signals import alert_changed
from monitoring.health.probes import check_database_down

log = logging.getLogger(__name__)
State = Alert.State


def fingerprint(labels: Labels) -> str:
    return hashlib.sha1(json.dumps(labels).encode(), usedforsecurity=False).hexdigest()[:16]


def breached(rule: AlertRule, value: float, threshold: float | None = None) -> bool:
    limit = rule.threshold if threshold is None else threshold
    return {
        AlertRule.Comparison.ABOVE: value > limit,
        AlertRule.Comparison.AT_LEAST: value >= limit,
        AlertRule.Comparison.BELOW: value < limit,
        AlertRule.Comparison.AT_MOST: value <= limit,
    }[AlertRule.Comparison(rule.comparison)]


def recovered(rule: AlertRule, value: float) -> bool:
    """Past the recovery threshold (on the good side of it), so a value hovering at the
    threshold does not resolve and re-fire the alert every evaluation."""
    return not breached(rule, value, rule.recovery_threshold)


@dataclass
class EvaluationResult:
    rules: int = 0
    alerts: int = 0
    fired: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)
    notifications: int = 0
    held: int = 0
    seconds: float = 0.0


def _labels_for(rule: AlertRule, labels: Labels) -> dict[str, str]:
    return {"rule": rule.name, "metric": rule.metric, "severity": rule.severity, **dict(labels)}


def alert_payload(alert: Alert, rule: AlertRule, kind: str) -> dict[str, Any]:
    metric = METRICS.get(rule.metric)
    return {
        "status": "resolved" if kind == Notification.Kind.RESOLVED else "firing",
        "kind": kind,
        "alert_id": alert.pk,
        "rule": rule.name,
        "metric": rule.metric,
        "metric_label": metric.label if metric else rule.metric,
        "unit": metric.unit if metric else "",
        "severity": rule.severity,
        "labels": alert.labels,
        "value": alert.value,
        "comparison": rule.get_comparison_display(),
        "threshold": rule.threshold,
        "fired_at": alert.fired_at.isoformat() if alert.fired_at else None,
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
        "description": rule.description,
    }


class Evaluator:
    def __init__(self, now: datetime) -> None:
        self.now = now
        self.readings: dict[tuple[str, str, int], Values] = {}
        self.quiet = Quiet.load(now)
        self.result = EvaluationResult()
        self._database_down: bool | None = None
        self.was_held: set[int] = set()

    def database_down(self) -> bool:
        if self._database_down is None:
            self._database_down = check_database_down()
        return self._database_down

    def read(self, rule: AlertRule) -> Values | None:
        metric = METRICS[rule.metric]
        key = (rule.metric, rule.scope, rule.window_s if metric.windowed else 0)
        if key not in self.readings:
            try:
                self.readings[key] = metric.read(Reading(rule.scope, rule.window_s, self.now))
            except Exception as exc:
                log.warning("metric %s (%s) could not be read: %s", rule.metric, rule.scope, exc)
                self.readings[key] = {}
        return self.readings[key]

    def run(self) -> EvaluationResult:
        started = time.perf_counter()
        rules = list(AlertRule.objects.filter(enabled=True).prefetch_related("channels"))
        by_rule: dict[int, dict[str, Alert]] = defaultdict(dict)
        for alert in Alert.objects.filter(rule__enabled=True):
            by_rule[alert.rule_id][alert.fingerprint] = alert
            if alert.held:
                self.was_held.add(alert.pk)
        touched: list[Alert] = []
        for rule in rules:
            metric = METRICS.get(rule.metric)
            if metric is None or rule.scope not in metric.scopes:
                log.warning("alert rule %r watches %s/%s, which does not exist", rule.name, rule.metric, rule.scope)
                continue
            self.result.rules += 1
            own = by_rule[rule.pk]
            if metric.reads_database and self.database_down():
                for alert in own.values():
                    alert.held = True
                    touched.append(alert)
                self.result.held += len(own)
                continue
            values = self.read(rule) or {}
            for labels, value in values.items():
                fp = fingerprint(labels)
                existing = own.pop(fp, None)
                alert = existing if existing is not None else self._alert(rule, labels, fp)
                touched.append(self.step(rule, alert, value))
            for alert in own.values():  # label sets that no longer report (a host gone)
                touched.append(self.step(rule, alert, None))
        self._save_readings(touched)
        self.result.alerts = len(touched)
        self.result.seconds = time.perf_counter() - started
        return self.result

    def _save_readings(self, alerts: list[Alert]) -> None:
        """The newest value of the alerts that show one (pending, firing, no data, held), in
        one batch of plain UPDATEs that psycopg pipelines; state is only changed by
        transitions. An inactive or resolved alert keeps the value of its last transition,
        which spares a write per quiet alert every evaluation."""
        quiet = (State.INACTIVE, State.RESOLVED)
        rows = [(a.value, a.last_evaluated_at, a.held, a.pk) for a in alerts
                if a.held or a.pk in self.was_held or a.state not in quiet]  # fmt: skip
        sql = f"UPDATE {Alert._meta.db_table} SET value = %s, last_evaluated_at = %s, held = %s WHERE id = %s"  # noqa: S608
        with connection.cursor() as cursor:
            cursor.executemany(sql, rows)

    def _alert(self, rule: AlertRule, labels: Labels, fp: str) -> Alert:
        try:
            with transaction.atomic():
                return Alert.objects.create(rule=rule, fingerprint=fp, labels=dict(labels))
        except IntegrityError:  # another evaluator created it a moment ago
            return Alert.objects.get(rule=rule, fingerprint=fp)

    def step(self, rule: AlertRule, alert: Alert, value: float | None) -> Alert:
        """Move one alert along for its newest value; returns it with value and time set."""
        alert.value, alert.last_evaluated_at, alert.held = value, self.now, False
        state = alert.state
        if value is None:
            if state != State.NO_DATA:
                self.transition(rule, alert, State.NO_DATA)
        elif state in (State.INACTIVE, State.RESOLVED, State.NO_DATA):
            if breached(rule, value):
                self.transition(rule, alert, State.FIRING if rule.for_s == 0 else State.PENDING)
            elif state == State.NO_DATA:
                self.transition(rule, alert, State.INACTIVE)
        elif state == State.PENDING:
            if not breached(rule, value):
                self.transition(rule, alert, State.INACTIVE)
            elif alert.pending_since and self.now - alert.pending_since >= timedelta(seconds=rule.for_s):
                self.transition(rule, alert, State.FIRING)
        elif state == State.FIRING:
            if recovered(rule, value):
                self.transition(rule, alert, State.RESOLVED)
            elif self._repeat_due(rule, alert):
                self.transition(rule, alert, State.FIRING, repeat=True)
        return alert

    def _repeat_due(self, rule: AlertRule, alert: Alert) -> bool:
        if alert.acknowledged_at is not None or alert.last_notified_at is None:
            return False
        return self.now - alert.last_notified_at >= timedelta(seconds=rule.repeat_interval_s)

    def transition(self, rule: AlertRule, alert: Alert, target: str, *, repeat: bool = False) -> None:
        now = self.now
        fields: dict[str, Any] = {"state": target, "value": alert.value, "last_evaluated_at": now,
                                  "held": False, "version": F("version") + 1}  # fmt: skip
        kind: str | None = None
        if repeat:
            fields["last_notified_at"], kind = now, Notification.Kind.REPEAT
        elif target == State.PENDING:
            fields["pending_since"] = now
        elif target == State.FIRING:
            fields.update(fired_at=now, resolved_at=None, last_notified_at=now, acknowledged_at=None,
                          acknowledged_by="")  # fmt: skip
            kind = Notification.Kind.FIRING
        elif target == State.RESOLVED:
            fields["resolved_at"] = now
            kind = Notification.Kind.RESOLVED
        won = Alert.objects.filter(pk=alert.pk, version=alert.version).update(**fields)
        if not won:
            alert.refresh_from_db()  # another evaluator moved it first; it also notified
            return
        alert.refresh_from_db()
        if target == State.FIRING and not repeat:
            self.result.fired.append(alert.pk)
        elif target == State.RESOLVED:
            self.result.resolved.append(alert.pk)
        if kind is not None:
            self.notify(rule, alert, kind)

    def notify(self, rule: AlertRule, alert: Alert, kind: str) -> None:
        payload = alert_payload(alert, rule, kind)
        labels = _labels_for(rule, tuple(alert.labels.items()))
        quiet = self.quiet.reason(labels)
        rows = [
            Notification(alert=alert, channel=channel, kind=kind, alert_version=alert.version, payload=payload,
                         status=Notification.Status.SUPPRESSED if quiet else Notification.Status.PENDING,
                         reason=quiet, next_attempt_at=self.now, created_at=self.now)
            for channel in rule.channels.all() if channel.enabled
        ]  # fmt: skip
        Notification.objects.bulk_create(rows, ignore_conflicts=True)
        self.result.notifications += len(rows)
        if kind != Notification.Kind.REPEAT:
            kind_name = "alert.resolved" if kind == Notification.Kind.RESOLVED else "alert.fired"
            alert_changed.send(sender=Alert, frame={"type": kind_name, **payload})


def alerts_evaluate(*, now: datetime | None = None) -> EvaluationResult:
    return Evaluator(now or timezone.now()).run()
