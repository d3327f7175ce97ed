"""Every process reports itself and its host: web, worker and beat nodes alike.

A daemon thread in each process writes one row (``NodeReport``) every few seconds with the
host's CPU, memory, disk and load, the process's RSS and open files (its children included,
so a pre-forking worker counts its pool), its open sockets and its own request tallies for
the last minutes. The row expires unless renewed, so the snapshot job sees exactly the nodes
that are alive, on every machine, whatever the broker or cache.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import psutil
from django.conf import settings
from django.utils import timezone

from common.background import BackgroundLoop
from monitoring.nodes.models import NodeReport
from monitoring.requests.traffic import Tally, get_recorder
from realtime.selectors import local_socket_count

if TYPE_CHECKING:
    from monitoring.requests.traffic import Tally

log = logging.getLogger(__name__)


def node_id() -> str:
    return f"{settings.OPSITE_NODE_NAME}:{os.getpid()}"


def _process_figures() -> dict[str, int]:
    me = psutil.Process()
    rss, files = 0, 0
    for proc in [me, *me.children(recursive=True)]:
        try:
            with proc.oneshot():
                rss += proc.memory_info().rss
                files += proc.num_fds() if hasattr(proc, "num_fds") else len(proc.open_files())
        except psutil.Error:
            continue  # a child that exited between the listing and the reading
    return {"process_rss_bytes": rss, "open_files": files}


def host_figures() -> dict[str, float]:
    """CPU since the previous call (the report interval), memory, the data disk, 1-minute load."""
    disk_path = settings.DATA_DIR if settings.DATA_DIR.exists() else "/"
    return {
        "cpu_percent": psutil.cpu_percent(interval=None),
        "memory_percent": psutil.virtual_memory().percent,
        "disk_percent": psutil.disk_usage(str(disk_path)).percent,
        "load_1": os.getloadavg()[0],
    }


def node_figures() -> dict[str, Any]:
    tallies = {str(minute): t.as_fields() for minute, t in get_recorder().own_minutes().items()}
    return {**host_figures(), **_process_figures(), "sockets": local_socket_count(), "traffic": tallies}


def reported_traffic(reports: list[NodeReport], minutes: set[int]) -> Tally:
    """The reports' own request tallies over the given minutes (epoch minutes), added up."""

    tally = Tally()
    for report in reports:
        for minute, fields in report.figures.get("traffic", {}).items():
            if int(minute) in minutes:
                tally.add(Tally.from_fields(fields))
    return tally


def node_report(*, role: str) -> None:
    now = timezone.now()
    ttl = timedelta(seconds=settings.OPSITE_NODE_REPORT_S * 3)
    NodeReport.objects.update_or_create(
        node=node_id(),
        defaults={"host": settings.OPSITE_NODE_NAME, "role": role, "figures": node_figures(),
                  "reported_at": now, "expires_at": now + ttl},
    )  # fmt: skip


def node_forget() -> None:
    """A node that stops cleanly leaves at once instead of when its row expires."""
    NodeReport.objects.filter(node=node_id()).delete()


def live_nodes(*, now: Any = None) -> list[NodeReport]:
    return list(NodeReport.objects.filter(expires_at__gt=now or timezone.now()).order_by("node"))


def live_nodes_by_host(*, now: Any = None) -> dict[str, list[NodeReport]]:
    """The live nodes grouped by host, hosts in name order."""
    by_host: dict[str, list[NodeReport]] = {}
    for report in live_nodes(now=now):
        by_host.setdefault(report.host, []).append(report)
    return dict(sorted(by_host.items()))


def newest(reports: list[NodeReport]) -> NodeReport:
    """The most recent of one host's reports: whose host figures are the current ones."""
    return max(reports, key=lambda r: r.reported_at)


class NodeReporter:
    def __init__(self) -> None:
        self.role = "web"
        self.loop = BackgroundLoop("opsite-node-report", self.report, lambda: settings.OPSITE_NODE_REPORT_S)
        self.on_start: list[Callable[[str], None]] = []  # other per-process loops start with this one

    def report(self) -> None:
        node_report(role=self.role)

    def start(self, role: str) -> None:
        """Idempotent and cheap: called on every request by the middleware."""
        if self.loop.started:
            return
        self.role = role
        psutil.cpu_percent(interval=None)  # the first reading is meaningless; it starts the interval
        self.loop.ensure_running()
        for hook in self.on_start:
            hook(role)


reporter = NodeReporter()
