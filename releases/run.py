"""One deploy or rollback as it runs, whatever the layout: its steps and transcript, its record
(who, version, result, the gate's figures, each step) for the dashboard's charts, the message
to the alert channels, and the parts every layout shares (the backup check, the settle window)."""

from __future__ import annotations

import contextlib
import fcntl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import DatabaseError
from django.utils import timezone

from backups.selectors import newest_verified, newest_verified_age_s
from monitoring.alerts.delivery import channels_announce
from monitoring.ledger.deploys import deployment_begin, deployment_save_quietly, deployments_interrupted
from monitoring.ledger.models import Deployment
from releases import gate, processes
from releases.layout import Layout

Progress = Callable[[str], None]
Result = Deployment.Result


class DeployError(RuntimeError):
    """A deploy or rollback that cannot go on; one line."""


@dataclass
class Step:
    name: str
    status: str = "running"
    seconds: float = 0.0
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.name, "status": self.status, "seconds": round(self.seconds, 2), "detail": self.detail}


@dataclass
class Outcome:
    result: str
    reason: str = ""
    version: str = ""
    previous_version: str = ""
    backup_id: int | None = None
    migrations: list[str] = field(default_factory=list)
    gate: dict[str, Any] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    deployment_id: int | None = None

    @property
    def exit_code(self) -> int:
        return 0 if self.result == Result.SUCCEEDED else 1


class Run:
    """One deploy or rollback: its steps, its transcript and its record."""

    def __init__(self, layout: Layout, *, kind: str, by: str, progress: Progress) -> None:
        self.layout = layout
        self.kind = kind
        self.by = by
        self.progress = progress
        self.outcome = Outcome(result=Result.RUNNING)
        self.record: Deployment | None = None
        self.children: dict[str, subprocess.Popen[bytes]] = {}

    # -- the record -------------------------------------------------------------------------------
    def begin(self, version: str, previous: str) -> None:
        self.outcome.version, self.outcome.previous_version = version, previous
        self.recorded()

    def recorded(self) -> None:
        """Write the record if it is not yet written: on a fresh install (or from a release
        before deploys were recorded) its table exists only once the migrations have run."""
        if self.record is not None:
            return
        o = self.outcome
        try:
            self.record = deployment_begin(kind=self.kind, version=o.version, previous_version=o.previous_version,
                                           by=self.by, layout=self.layout.kind)  # fmt: skip
        except DatabaseError:
            self.progress("  (no table for the deploy record yet: it is written after the migrations)")
            return
        self.outcome.deployment_id = self.record.pk
        self.save()

    def record_again(self) -> None:
        """Write the record as a new row: a restored database no longer holds it. Deploys the
        restored database shows as running (the backup was taken while they ran) are marked
        failed."""
        if self.record is None:
            return
        self.record.pk = None
        self.record._state.adding = True
        self.save()
        if self.record.pk is not None:
            self.outcome.deployment_id = self.record.pk
            deployments_interrupted(but=self.record.pk)

    def save(self) -> None:
        o = self.outcome
        problem = deployment_save_quietly(self.record, result=o.result, reason=o.reason, backup_id=o.backup_id,
                                          migrations=o.migrations, gate=o.gate,
                                          steps=[s.as_dict() for s in o.steps])  # fmt: skip
        if problem:
            self.progress(f"  (the deploy record could not be written: {problem})")

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[Step]:
        step = Step(name)
        self.outcome.steps.append(step)
        self.progress(f"{name} …")
        started = time.monotonic()
        try:
            yield step
        except BaseException as exc:
            step.status = "failed"
            if not step.detail:
                step.detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise
        else:
            if step.status == "running":
                step.status = "ok"
        finally:
            step.seconds = time.monotonic() - started
            detail = f" ({step.detail})" if step.detail else ""
            self.progress(f"{name}: {step.status} in {step.seconds:.1f} s{detail}")
            self.save()

    def finish(self, result: str, reason: str = "") -> Outcome:
        self.outcome.result, self.outcome.reason = result, reason
        self.save()
        self.announce()
        return self.outcome

    def announce(self) -> None:
        o = self.outcome
        what = Result(o.result).label
        noun = "Rollback to" if self.kind == Deployment.Kind.ROLLBACK else "Deploy of"
        text = f"{noun} {o.version} {what}" + (f": {o.reason}" if o.reason else "")
        now = timezone.now().isoformat()
        payload = {
            "status": "resolved" if o.result == Result.SUCCEEDED else "firing", "kind": "deploy",
            "summary": f"[{'DEPLOY' if o.result == Result.SUCCEEDED else 'CRITICAL'}] {text}",
            "rule": f"{self.kind} {o.version}", "metric": "deploy", "metric_label": "deploy result", "unit": "",
            "severity": "info" if o.result == Result.SUCCEEDED else "critical",
            "labels": {"version": o.version, "previous": o.previous_version, "by": self.by, "result": o.result},
            "value": 0.0 if o.result == Result.SUCCEEDED else 1.0, "comparison": ">=", "threshold": 1.0,
            "fired_at": now, "resolved_at": now if o.result == Result.SUCCEEDED else None,
            "description": text + "\n" + "\n".join(f"{s.name}: {s.status} in {s.seconds:.1f} s"
                                                   + (f" ({s.detail})" if s.detail else "") for s in o.steps),
            "deployment": {"id": o.deployment_id, "gate": o.gate, "migrations": o.migrations,
                           "backup_id": o.backup_id},
        }  # fmt: skip
        try:
            told = channels_announce(payload)
        except Exception as exc:  # the database may be the thing that broke: the deploy's result stands
            self.progress(f"the alert channels could not be told: {type(exc).__name__}: {exc}")
            return
        if told:
            self.progress("told " + ", ".join(f"{name}: {what}" for name, what in told.items()))

    # -- commands ---------------------------------------------------------------------------------
    def execute(self, argv: list[str], *, cwd: Path, env: dict[str, str], timeout_s: float = 3600,
                echo: bool = True, brief: bool = False, stdin: str | None = None) -> list[str]:  # fmt: skip
        """Run ``argv``; its output lines (echoed as progress; with ``brief`` only its unindented
        lines, not the detail of each item); DeployError with its last line when it fails or
        runs past ``timeout_s``."""
        lines: list[str] = []
        try:
            child = subprocess.Popen(argv, cwd=cwd, env=env, text=True, errors="replace", stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT,
                                     stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL)  # fmt: skip
        except OSError as exc:
            raise DeployError(f"cannot run {argv[0]}: {exc.strerror}") from exc
        with child:
            if stdin is not None:
                assert child.stdin is not None
                child.stdin.write(stdin)
                child.stdin.close()
            killer = threading.Timer(timeout_s, child.kill)
            killer.start()
            try:
                assert child.stdout is not None
                for raw in child.stdout:
                    line = raw.rstrip()
                    lines.append(line)
                    if echo and line and not (brief and line[0].isspace()):
                        self.progress(f"    {line}")
                code = child.wait()
            finally:
                killer.cancel()
        what = " ".join(argv[:4])
        if code == -9:
            raise DeployError(f"{what} ran past {timeout_s:g} s")
        if code != 0:
            last = next((line for line in reversed(lines) if line.strip()), f"exit {code}")
            raise DeployError(f"{what} failed: {last.strip()}")
        return lines

    def manage(self, release: Path, *args: str, timeout_s: float = 3600, echo: bool = True,
               brief: bool = False) -> list[str]:  # fmt: skip
        """``manage.py <args>`` of the release directory ``release``, with the layout's environment."""
        python = release / self.layout.python
        if not python.exists():
            raise DeployError(f"{release.name} has no {self.layout.python} (the layout's python)")
        return self.execute([str(python), "manage.py", *args], cwd=release,
                            env=processes.environment(self.layout, None, release), timeout_s=timeout_s,
                            echo=echo, brief=brief)  # fmt: skip


@contextlib.contextmanager
def deploy_lock(layout: Layout) -> Iterator[None]:
    """One deploy or rollback at a time per layout."""
    lock_dir = layout.run_dir if layout.kind == "plain" else layout.path.parent
    lock_dir.mkdir(parents=True, exist_ok=True)
    with (lock_dir / f".{layout.path.stem}.deploy.lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise DeployError(f"another deploy or rollback of {layout.path.name} is running") from exc
        yield


def pending_migrations(lines: list[str]) -> list[str]:
    """The migrations named by ``migrate --plan`` (``app.0012_name`` lines)."""
    return [line.strip() for line in lines if line and not line[0].isspace() and "." in line
            and not line.startswith(("Planned operations", "No planned"))]  # fmt: skip


def ensure_backup(run: Run, take: Callable[[], object]) -> None:
    """A verified backup younger than the layout's limit, or one taken now with ``take``; none
    on a fresh install (the migrations about to run create the first tables)."""
    with run.step("pre-flight: verified backup") as step:
        if any(name.startswith("backups.0001_") for name in run.outcome.migrations):
            step.detail = "nothing to back up: a fresh install"
            return
        age = newest_verified_age_s()
        limit_s = run.layout.backup_max_age_h * 3600
        if age is None or age > limit_s or limit_s == 0:
            run.progress(
                "  "
                + ("no verified backup yet" if age is None else f"the newest verified backup is {age / 3600:.1f} h old")
                + ": taking one now"
            )
            take()
        newest = newest_verified()
        if newest is None:
            raise DeployError("no verified backup after taking one")
        run.outcome.backup_id = newest.pk
        step.detail = f"backup {newest.pk}"


def settle(run: Run, alive: Callable[[], str | None]) -> gate.Verdict:
    """Wait the settle window, stopping early when ``alive`` names a process that stopped, then
    judge the new release by the gate."""
    policy = run.layout.gate
    if not policy.metrics_urls:
        return gate.Verdict(True, 0, 0, None, None, "no metrics_urls in the layout: not judged")
    before = gate.read(policy.metrics_urls)
    started = time.monotonic()
    next_report = started + 10
    while (left := policy.settle_s - (time.monotonic() - started)) > 0:
        stopped = alive()
        if stopped:
            return gate.Verdict(False, 0, 0, None, None, f"{stopped} stopped during the settle window")
        if time.monotonic() >= next_report:
            so_far = gate.judge(before, gate.read(policy.metrics_urls), policy)
            run.progress(f"  {policy.settle_s - left:.0f}/{policy.settle_s:g} s: {so_far.line()}")
            next_report += 10
        time.sleep(min(0.5, left))
    return gate.judge(before, gate.read(policy.metrics_urls), policy)


def gate_step(run: Run, alive: Callable[[], str | None]) -> gate.Verdict:
    """The health gate as a step of the transcript, its figures in the record."""
    policy = run.layout.gate
    with run.step(f"health gate ({policy.settle_s:g} s)") as step:
        verdict = settle(run, alive)
        run.outcome.gate = {**verdict.figures(), "settle_s": policy.settle_s, "max_error_rate": policy.max_error_rate,
                            "max_p95_ms": policy.max_p95_ms}  # fmt: skip
        step.detail = verdict.line() + (f"; {verdict.reason}" if verdict.reason else "")
        if not verdict.passed:
            step.status = "failed"
    return verdict


def backup_of_last_deploy(layout: Layout, version: str) -> int | None:
    """The pre-deploy backup of the newest deploy of ``version``."""
    last = Deployment.objects.filter(kind=Deployment.Kind.DEPLOY, layout=layout.kind, version=version,
                                     backup_id__isnull=False).first()  # fmt: skip
    return last.backup_id if last else None
