"""The monitoring app's start-up: its receivers and process hooks are wired in ``ready()``.
This module is imported before any app's models are, so what it wires is imported inside
``ready()`` and the receivers (start-up order, not a cycle)."""

from typing import Any

from django.apps import AppConfig
from django.contrib.auth.signals import user_logged_out
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self) -> None:
        from celery.signals import (
            beat_init,
            before_task_publish,
            task_postrun,
            task_prerun,
            worker_ready,
            worker_shutdown,
        )

        from backups.signals import backup_finished
        from common.context import install_log_record_factory, stamp_task_message
        from monitoring.alerts.delivery import channel_circuits
        from monitoring.alerts.signals import alert_changed
        from monitoring.alerts.watchdog import watchdog_start
        from monitoring.dashboard.warming import warm_caches_at_start
        from monitoring.health.checks import register_builtin
        from monitoring.health.dependencies import CIRCUIT_SOURCES
        from monitoring.ledger.runs import stamp_beat_message
        from monitoring.ledger.series import on_task_postrun as count_task_run
        from monitoring.ledger.series import on_task_prerun as start_task_context
        from monitoring.lifecycle import STARTED_HOOKS
        from monitoring.nodes.reports import node_forget, reporter
        from monitoring.prometheus import install as install_prometheus
        from monitoring.requests.profiling import on_task_postrun, on_task_prerun
        from monitoring.requests.queries import install_observer

        install_log_record_factory()
        install_prometheus()
        reporter.on_start.append(watchdog_start)
        if channel_circuits not in CIRCUIT_SOURCES:
            CIRCUIT_SOURCES.append(channel_circuits)
        if warm_caches_at_start not in STARTED_HOOKS:
            STARTED_HOOKS.append(warm_caches_at_start)
        register_builtin()
        task_prerun.connect(start_task_context, weak=False, dispatch_uid="monitoring.task_context")
        task_postrun.connect(count_task_run, weak=False, dispatch_uid="monitoring.task_series")
        before_task_publish.connect(stamp_task_message, weak=False, dispatch_uid="monitoring.task_trace")
        task_prerun.connect(on_task_prerun, weak=False, dispatch_uid="monitoring.profile_task_start")
        task_postrun.connect(on_task_postrun, weak=False, dispatch_uid="monitoring.profile_task_stop")
        before_task_publish.connect(stamp_beat_message, weak=False, dispatch_uid="monitoring.ledger_stamp")
        worker_ready.connect(lambda **_: reporter.start("worker"), weak=False, dispatch_uid="monitoring.node_worker")
        beat_init.connect(lambda **_: reporter.start("beat"), weak=False, dispatch_uid="monitoring.node_beat")
        worker_shutdown.connect(lambda **_: node_forget(), weak=False, dispatch_uid="monitoring.node_leave")
        user_logged_out.connect(_close_dashboards, dispatch_uid="monitoring.dashboards_logged_out")
        post_migrate.connect(_default_rules, sender=self, dispatch_uid="monitoring.default_alert_rules")
        connection_created.connect(install_observer, dispatch_uid="monitoring.query_observer")
        backup_finished.connect(_push_to_dashboards, dispatch_uid="monitoring.backup_finished")
        alert_changed.connect(_push_to_dashboards, dispatch_uid="monitoring.alert_changed")


def _close_dashboards(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    from monitoring.dashboard.services import ops_access_revoked_publish

    if user is not None:
        session_key = getattr(getattr(request, "session", None), "session_key", None)
        ops_access_revoked_publish(user_id=user.pk, session_key=session_key)


def _push_to_dashboards(sender: Any, frame: dict[str, Any], **kwargs: Any) -> None:
    from monitoring.dashboard.services import ops_event_publish

    ops_event_publish(frame=frame)


def _default_rules(sender: AppConfig, using: str = "default", **kwargs: object) -> None:
    from common.migrations import table_exists
    from monitoring.alerts.defaults import ensure_default_rules
    from monitoring.alerts.models import AlertRule

    if table_exists(AlertRule, using):
        ensure_default_rules()
