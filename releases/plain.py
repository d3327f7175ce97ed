"""The plain-process layout: releases are directories under ``<root>/releases`` (code and
its virtualenv), ``<root>/current`` and ``<root>/previous`` point at two of them, and this
machine runs the layout's processes from ``current`` (``processes.py``).

A deploy: pre-flight (``check --deploy``, the pending migrations listed, a verified backup
younger than the layout's limit or one taken now), migrate, a rolling restart that waits for
each process to be ready, cache warming, then the health gate. A process that never becomes
ready, or a failed gate, rolls the release back by itself."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from monitoring.ledger.models import Deployment
from releases import gate, processes
from releases.layout import Layout
from releases.run import (
    DeployError,
    Outcome,
    Progress,
    Result,
    Run,
    backup_of_last_deploy,
    deploy_lock,
    ensure_backup,
    gate_step,
    pending_migrations,
)  # fmt: skip


def release_dir(layout: Layout, ref: str) -> Path:
    """A release by path or by name under ``<root>/releases``."""
    candidates = [Path(ref)] if "/" in ref else [layout.root / "releases" / ref, Path(ref)]
    for path in candidates:
        if (path / "manage.py").is_file():
            return path.resolve()
    raise DeployError(f"no release {ref!r}: expected a directory with manage.py (or a name under "
                      f"{layout.root / 'releases'})")  # fmt: skip


def linked(link: Path) -> Path | None:
    return link.resolve() if link.is_symlink() and link.resolve().is_dir() else None


def _point(link: Path, target: Path | None) -> None:
    """Point ``link`` at ``target`` atomically (a new link renamed over the old one)."""
    if target is None:
        link.unlink(missing_ok=True)
        return
    fresh = link.with_name(f".{link.name}.{os.getpid()}")
    fresh.unlink(missing_ok=True)
    fresh.symlink_to(target)
    fresh.replace(link)


def rolling_restart(run: Run, release: Path, *, keep_running: bool = False) -> None:
    """Each process of the layout, in order: stop the old one, start it from ``release`` and wait
    until it is ready; the others keep serving meanwhile. With ``keep_running`` a process that
    already runs ``release`` is left alone (going back after a rollout stopped half-way)."""
    layout = run.layout
    for process in layout.processes:
        now = processes.running(layout, process.name)
        if keep_running and now is not None and now.release == release.name:
            continue
        processes.stop(layout, process, progress=run.progress, children=run.children)
        child = processes.start(layout, process, release)
        run.children[process.name] = child
        took = processes.wait_ready(layout, process, child, release)
        run.progress(f"  {process.name} ready on {release.name} in {took:.1f} s (pid {child.pid})")


def stop_all(run: Run) -> None:
    for process in reversed(run.layout.processes):
        processes.stop(run.layout, process, progress=run.progress, children=run.children)


def _preflight(run: Run, release: Path, fallback: Path) -> None:
    with run.step("pre-flight: check --deploy"):
        run.manage(release, "check", "--deploy", "--fail-level", "ERROR")
    with run.step("pre-flight: pending migrations") as step:
        run.outcome.migrations = pending_migrations(run.manage(release, "migrate", "--plan", echo=False))
        step.detail = ", ".join(run.outcome.migrations) if run.outcome.migrations else "none"
    ensure_backup(run, lambda: run.manage(fallback, "backup", "--verify", timeout_s=4 * 3600, brief=True))


def _stopped(layout: Layout) -> str | None:
    """The first process of the layout that is not running, if any."""
    return next((p.name for p in layout.processes if processes.running(layout, p.name) is None), None)


def _roll_back(run: Run, to: Path | None, why: str, *, before_it: Path | None) -> Outcome:
    """Automatic rollback after a failed rollout or gate."""
    run.progress(f"rolling back: {why}")
    if to is None:
        with run.step("stop the failed release (no previous release to go back to)"):
            stop_all(run)
        return run.finish(Result.FAILED, f"{why}; no previous release, its processes were stopped")
    try:
        with run.step(f"roll back to {to.name}"):
            _point(run.layout.previous, before_it)  # as if the failed release had never been tried
            _point(run.layout.current, to)
            rolling_restart(run, to, keep_running=True)
    except (DeployError, processes.ProcessFailed, OSError) as exc:
        return run.finish(Result.FAILED, f"{why}; the rollback failed too: {exc}")
    kept = run.outcome.migrations
    note = (f"; the schema keeps {', '.join(kept)} (rollback --restore-backup restores backup "
            f"{run.outcome.backup_id})") if kept else ""  # fmt: skip
    return run.finish(Result.ROLLED_BACK, why + note)


def deploy(layout: Layout, ref: str, *, by: str, progress: Progress) -> Outcome:
    release = release_dir(layout, ref)
    with deploy_lock(layout):
        old, older = linked(layout.current), linked(layout.previous)
        if old == release:
            raise DeployError(f"{release.name} is already the current release")
        run = Run(layout, kind=Deployment.Kind.DEPLOY, by=by, progress=progress)
        run.begin(release.name, old.name if old else "")
        progress(f"deploying {release.name} over {old.name if old else 'nothing'} ({layout.path})")
        try:
            _preflight(run, release, old or release)
            with run.step("migrate"):
                run.manage(release, "migrate", "--noinput")
        except DeployError as exc:
            return run.finish(Result.FAILED, str(exc))
        run.recorded()
        _point(layout.previous, old)
        _point(layout.current, release)
        try:
            with run.step("rolling restart"):
                rolling_restart(run, release)
        except (processes.ProcessFailed, OSError) as exc:
            tail = getattr(exc, "log_tail", "")
            if tail:
                progress("  " + tail.replace("\n", "\n  "))
            return _roll_back(run, old, str(exc), before_it=older)
        if layout.warm_cache:
            with contextlib.suppress(DeployError), run.step("warm caches"):
                run.manage(release, "warm_cache")
        try:
            verdict = gate_step(run, lambda: _stopped(layout))
        except gate.GateUnreadable as exc:
            return _roll_back(run, old, f"the health gate could not read the metrics: {exc}", before_it=older)
        if not verdict.passed:
            return _roll_back(run, old, f"health gate failed: {verdict.reason}", before_it=older)
        return run.finish(Result.SUCCEEDED)


def rollback(layout: Layout, *, to: str | None, restore_backup: bool, backup_id: int | None, by: str,
             progress: Progress) -> Outcome:  # fmt: skip
    """Back to the previous release (or ``to``); with ``restore_backup`` every process stops,
    the pre-deploy backup of the current release is restored, and all start again."""
    with deploy_lock(layout):
        current = linked(layout.current)
        target = release_dir(layout, to) if to else linked(layout.previous)
        if target is None:
            raise DeployError("no previous release to roll back to (name one with --to)")
        if target == current and not restore_backup:
            raise DeployError(f"{target.name} is already the current release")
        if restore_backup and backup_id is None:
            backup_id = backup_of_last_deploy(layout, current.name) if current else None
            if backup_id is None:
                raise DeployError(f"no pre-deploy backup is recorded for {current.name if current else 'this layout'}"
                                  " (name one with --backup)")  # fmt: skip
        run = Run(layout, kind=Deployment.Kind.ROLLBACK, by=by, progress=progress)
        run.begin(target.name, current.name if current else "")
        run.outcome.backup_id = backup_id
        progress(f"rolling back from {current.name if current else 'nothing'} to {target.name}")
        try:
            if restore_backup:
                assert backup_id is not None
                with run.step("stop every process"):
                    stop_all(run)
                with run.step(f"restore backup {backup_id}") as step:
                    said = run.manage(target, "restore_backup", str(backup_id), "--yes", timeout_s=4 * 3600,
                                      brief=True)  # fmt: skip
                    step.detail = next((line for line in reversed(said) if line.strip()), "")
                    run.record_again()  # the restored database does not hold this rollback's row
                with run.step("migrate"):
                    run.manage(target, "migrate", "--noinput")
            _point(layout.previous, current if current != target else None)
            _point(layout.current, target)
            with run.step("rolling restart" if not restore_backup else "start every process"):
                rolling_restart(run, target)
        except (DeployError, processes.ProcessFailed, OSError) as exc:
            return run.finish(Result.FAILED, str(exc))
        return run.finish(Result.SUCCEEDED)


def status(layout: Layout) -> list[str]:
    """Lines describing the layout: current and previous release, each process."""
    current, previous = linked(layout.current), linked(layout.previous)
    lines = [f"current: {current.name if current else '-'}", f"previous: {previous.name if previous else '-'}"]
    for process in layout.processes:
        now = processes.running(layout, process.name)
        lines.append(f"{process.name}: " + (f"running, pid {now.pid}, {now.release}" if now else "stopped"))
    return lines


def start_all(layout: Layout, *, progress: Progress) -> None:
    """Start every stopped process from the current release (after a machine restart)."""
    current = linked(layout.current)
    if current is None:
        raise DeployError("no current release: deploy one first")
    run = Run(layout, kind=Deployment.Kind.DEPLOY, by="", progress=progress)
    for process in layout.processes:
        if processes.running(layout, process.name) is None:
            child = processes.start(layout, process, current)
            run.children[process.name] = child
            processes.wait_ready(layout, process, child, current)
            progress(f"{process.name} ready on {current.name} (pid {child.pid})")


def stop_layout(layout: Layout, *, progress: Progress) -> None:
    stop_all(Run(layout, kind=Deployment.Kind.DEPLOY, by="", progress=progress))
