"""The monitoring console: the health report taken on a period, shown as one line per check
for a terminal and kept as JSON lines in a log, with a notification through the alert
channels when the overall status changes (``manage.py monitor``)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from monitoring.alerts.delivery import channels_announce
from monitoring.health.probes import DEGRADED, HEALTHY, OK, UNHEALTHY, detailed_report

EXIT_CODES = {HEALTHY: 0, DEGRADED: 1, UNHEALTHY: 2}
SEVERITY = {HEALTHY: "info", DEGRADED: "warning", UNHEALTHY: "critical"}
# the newest line of a log is found by reading its tail, however long the log has grown
TAIL_BYTES = 64 * 1024


@dataclass(frozen=True)
class Round:
    status: str
    report: dict[str, Any]

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def components(self) -> dict[str, dict[str, Any]]:
        return dict(self.report.get("components", {}))


@dataclass(frozen=True)
class CheckLine:
    name: str
    status: str
    text: str


def monitor_round() -> Round:
    status, report = detailed_report()
    return Round(status, report)


def check_lines(current: Round) -> list[CheckLine]:
    """One line per check: name, status, time taken and what is wrong, widest name aligned."""
    components = current.components()
    width = max((len(name) for name in components), default=0)
    lines = []
    for name, result in components.items():
        detail = f"  {result['detail']}" if result.get("detail") else ""
        critical = " (critical)" if result.get("critical") else ""
        text = f"{name:<{width}}  {result['status']:<8} {result['ms']:>8.1f} ms{critical}{detail}"
        lines.append(CheckLine(name, result["status"], text))
    return lines


def summary_line(current: Round) -> str:
    components = current.components()
    bad = [name for name, result in components.items() if result["status"] != OK]
    where = f": {', '.join(bad)}" if bad else ""
    counted = f"{len(components) - len(bad)}/{len(components)} ok"
    return f"{current.report['timestamp']} {current.status.upper()} ({counted}){where}"


def json_line(current: Round) -> str:
    """The round as one JSON object on one line: time, node, status, each check's status and detail."""
    checks = {
        name: {key: result[key] for key in ("status", "ms", "detail") if key in result}
        for name, result in current.components().items()
    }
    return json.dumps(
        {"at": current.report["timestamp"], "node": current.report["node"], "status": current.status,
         "exit_code": current.exit_code, "checks": checks},
        separators=(",", ":"), default=str,
    )  # fmt: skip


def log_append(path: Path, line: str) -> None:
    """Append one line in a single write, so two monitors sharing a log never interleave a line."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def last_logged_status(path: Path) -> str | None:
    """The overall status of the newest readable line of a monitor log; None without one."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - TAIL_BYTES))
            tail = handle.read().decode(errors="replace")
    except FileNotFoundError:
        return None
    for raw in reversed(tail.splitlines()):
        try:
            status = json.loads(raw).get("status")
        except (ValueError, AttributeError):
            continue
        if status in EXIT_CODES:
            return str(status)
    return None


def change_payload(previous: str, current: Round) -> dict[str, Any]:
    """A status change as an alert channel's payload (the fields every transport reads)."""
    failing = {name: result.get("detail") or result["status"] for name, result in current.components().items()
               if result["status"] != OK}  # fmt: skip
    recovered = current.status == HEALTHY
    return {
        "status": "resolved" if recovered else "firing",
        "kind": "health",
        "rule": "opsite health",
        "metric": "health_status",
        "metric_label": "overall health",
        "unit": "",
        "severity": SEVERITY[current.status],
        "labels": {"node": settings.OPSITE_NODE_NAME, "from": previous, "to": current.status},
        "value": float(current.exit_code),
        "comparison": ">=",
        "threshold": 1.0,
        "fired_at": current.report["timestamp"],
        "resolved_at": current.report["timestamp"] if recovered else None,
        "description": f"overall health went from {previous} to {current.status}"
        + "".join(f"\n{name}: {what}" for name, what in failing.items()),
        "failing": failing,
    }


def announce_change(previous: str | None, current: Round) -> dict[str, str] | None:
    """Notify every enabled alert channel when the status differs from the previous one; what
    each channel answered, or None when nothing changed (or nothing was known before)."""
    if previous is None or previous == current.status:
        return None
    return channels_announce(change_payload(previous, current))
