"""Deploys through a container engine: Docker Compose (``deploy/docker-compose.prod.yml``) and
Kubernetes (``deploy/k8s/``). A release is an image tag; the engine restarts the containers
(compose ``up --wait`` one service at a time, Kubernetes' rolling update and ``rollout
status``), and the steps around it are the plain layout's: the pre-flight checks run in the new
image, the backup in the running one, migrations once, then the same health gate, and a
failed rollout or gate is rolled back by itself (compose: the previous tag again; Kubernetes:
``rollout undo``)."""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass

from django.db import DatabaseError

from monitoring.ledger.models import Deployment
from releases import gate
from releases.layout import Layout
from releases.run import (
    DeployError,
    Outcome,
    Progress,
    Result,
    Run,
    deploy_lock,
    ensure_backup,
    gate_step,
    pending_migrations,
)  # fmt: skip

_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_JOB_NAME = re.compile(r"^metadata:\s*\{?\s*name:\s*([a-z0-9.-]+)", re.MULTILINE)
_IMAGE_LINE = re.compile(r"^(\s*image:\s*)\S+\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Command:
    argv: list[str]
    env: dict[str, str]
    stdin: str | None = None
    timeout_s: float = 900


class Compose:
    """``docker compose`` with the layout's file; the image is ``${OPSITE_IMAGE}`` in it."""

    def __init__(self, layout: Layout) -> None:
        if layout.compose_file is None:
            raise DeployError('a compose layout needs compose_file = "…/docker-compose.prod.yml"')
        self.layout = layout
        self.base = ["docker", "compose", "-f", str(layout.compose_file)]
        if layout.env_file is not None:
            self.base += ["--env-file", str(layout.env_file)]

    def _env(self, image: str) -> dict[str, str]:
        return {**os.environ, "OPSITE_IMAGE": image}

    def in_running(self, *args: str) -> Command:
        return Command([*self.base, "exec", "-T", self.layout.services[0], "python", "manage.py", *args],
                       self._env(""), timeout_s=4 * 3600)  # fmt: skip

    def in_image(self, image: str, *args: str) -> Command:
        return Command([*self.base, "run", "--rm", "--no-deps", "-T", "migrate", "python", "manage.py", *args],
                       self._env(image))  # fmt: skip

    def migrate(self, image: str) -> list[Command]:
        return [Command([*self.base, "run", "--rm", "-T", "migrate"], self._env(image), timeout_s=3600)]

    def roll(self, service: str, image: str) -> list[Command]:
        return [Command([*self.base, "up", "-d", "--no-deps", "--wait", service], self._env(image))]

    def undo(self, service: str, previous_image: str) -> list[Command]:
        return self.roll(service, previous_image)


class Kubernetes:
    """``kubectl`` in the layout's namespace; the services are Deployment names."""

    def __init__(self, layout: Layout) -> None:
        if layout.migrate_job is None:
            raise DeployError('a kubernetes layout needs migrate_job = "…/migrate-job.yaml"')
        self.layout = layout
        self.base = ["kubectl", "-n", layout.namespace]
        self.env = dict(os.environ)

    def in_running(self, *args: str) -> Command:
        return Command([*self.base, "exec", f"deployment/{self.layout.services[0]}", "--", "python", "manage.py",
                        *args], self.env, timeout_s=4 * 3600)  # fmt: skip

    def in_image(self, image: str, *args: str) -> Command:
        """A one-off pod of the new image with the ConfigMap and Secret the Deployments read."""
        name = f"opsite-preflight-{int(time.time())}"
        overrides = {"spec": {"containers": [{
            "name": name, "image": image, "command": ["python", "manage.py", *args],
            "envFrom": [{"configMapRef": {"name": "opsite"}}, {"secretRef": {"name": "opsite"}}]}]}}  # fmt: skip
        return Command([*self.base, "run", name, "--rm", "-i", "--restart=Never", f"--image={image}",
                        f"--overrides={json.dumps(overrides)}"], self.env)  # fmt: skip

    def job_manifest(self, image: str) -> tuple[str, str]:
        """The migrate Job's name and its manifest with ``image``."""
        assert self.layout.migrate_job is not None
        try:
            text = self.layout.migrate_job.read_text()
        except OSError as exc:
            raise DeployError(f"cannot read {self.layout.migrate_job}: {exc.strerror}") from exc
        name = _JOB_NAME.search(text)
        if name is None or not _IMAGE_LINE.search(text):
            raise DeployError(f"{self.layout.migrate_job} has no metadata name or no image line")
        return name.group(1), _IMAGE_LINE.sub(lambda m: f"{m.group(1)}{image}", text)

    def migrate(self, image: str) -> list[Command]:
        job, manifest = self.job_manifest(image)
        return [
            Command([*self.base, "delete", "job", job, "--ignore-not-found", "--wait=true"], self.env),
            Command([*self.base, "apply", "-f", "-"], self.env, stdin=manifest),
            Command([*self.base, "wait", "--for=condition=complete", f"job/{job}", "--timeout=3600s"], self.env,
                    timeout_s=3660),
        ]  # fmt: skip

    def roll(self, service: str, image: str) -> list[Command]:
        return [
            Command([*self.base, "set", "image", f"deployment/{service}", f"*={image}"], self.env),
            Command([*self.base, "rollout", "status", f"deployment/{service}", "--timeout=600s"], self.env),
        ]

    def undo(self, service: str, previous_image: str) -> list[Command]:
        return [
            Command([*self.base, "rollout", "undo", f"deployment/{service}"], self.env),
            Command([*self.base, "rollout", "status", f"deployment/{service}", "--timeout=600s"], self.env),
        ]


Engine = Compose | Kubernetes


def engine_of(layout: Layout) -> Engine:
    return Compose(layout) if layout.kind == "compose" else Kubernetes(layout)


def _run(run: Run, command: Command) -> list[str]:
    return run.execute(command.argv, cwd=run.layout.path.parent, env=command.env, timeout_s=command.timeout_s,
                       stdin=command.stdin)  # fmt: skip


def current_version(layout: Layout) -> str:
    """The release the layout runs: the newest deploy or rollback that succeeded."""
    try:
        last = Deployment.objects.filter(layout=layout.kind, result=Result.SUCCEEDED).first()
    except DatabaseError:  # a fresh install: no table for the records until the first migrate
        return ""
    return last.version if last else ""


def _image(layout: Layout, tag: str) -> str:
    if not _TAG.match(tag):
        raise DeployError(f"{tag!r} is not an image tag (letters, digits, _ . -; at most 128)")
    return f"{layout.image}:{tag}"


def _roll_back(run: Run, engine: Engine, rolled: list[str], previous: str, why: str) -> Outcome:
    run.progress(f"rolling back: {why}")
    if not previous and isinstance(engine, Compose):
        return run.finish(Result.FAILED, f"{why}; no previous release recorded to go back to")
    try:
        with run.step(f"roll back to {previous or 'the previous revision'}"):
            for service in reversed(rolled):
                for command in engine.undo(service, _image(run.layout, previous) if previous else ""):
                    _run(run, command)
    except DeployError as exc:
        return run.finish(Result.FAILED, f"{why}; the rollback failed too: {exc}")
    return run.finish(Result.ROLLED_BACK, why)


def deploy(layout: Layout, tag: str, *, by: str, progress: Progress) -> Outcome:
    image = _image(layout, tag)
    engine = engine_of(layout)
    with deploy_lock(layout):
        previous = current_version(layout)
        if previous == tag:
            raise DeployError(f"{tag} is already the current release")
        run = Run(layout, kind=Deployment.Kind.DEPLOY, by=by, progress=progress)
        run.begin(tag, previous)
        progress(f"deploying {image} over {previous or 'nothing recorded'} ({layout.kind}, {layout.path})")
        try:
            with run.step("pre-flight: check --deploy"):
                _run(run, engine.in_image(image, "check", "--deploy", "--fail-level", "ERROR"))
            with run.step("pre-flight: pending migrations") as step:
                run.outcome.migrations = pending_migrations(_run(run, engine.in_image(image, "migrate", "--plan")))
                step.detail = ", ".join(run.outcome.migrations) or "none"
            ensure_backup(run, lambda: _run(run, engine.in_running("backup", "--verify")))
            with run.step("migrate"):
                for command in engine.migrate(image):
                    _run(run, command)
        except DeployError as exc:
            return run.finish(Result.FAILED, str(exc))
        run.recorded()
        rolled: list[str] = []
        try:
            with run.step("rolling restart"):
                for service in layout.services:
                    rolled.append(service)
                    for command in engine.roll(service, image):
                        _run(run, command)
        except DeployError as exc:
            return _roll_back(run, engine, rolled, previous, str(exc))
        try:
            verdict = gate_step(run, lambda: None)
        except gate.GateUnreadable as exc:
            return _roll_back(run, engine, rolled, previous, f"the health gate could not read the metrics: {exc}")
        if not verdict.passed:
            return _roll_back(run, engine, rolled, previous, f"health gate failed: {verdict.reason}")
        return run.finish(Result.SUCCEEDED)


def rollback(layout: Layout, *, to: str | None, restore_backup: bool, backup_id: int | None, by: str,
             progress: Progress) -> Outcome:  # fmt: skip
    if restore_backup:
        raise DeployError("--restore-backup runs on the plain layout; with containers, stop the services and run "
                          "restore_backup in one (see the runbook)")  # fmt: skip
    engine = engine_of(layout)
    with deploy_lock(layout):
        current = current_version(layout)
        target = to or _previous_version(layout, current)
        if isinstance(engine, Compose) and not target:
            raise DeployError("no previous release is recorded (name one with --to)")
        run = Run(layout, kind=Deployment.Kind.ROLLBACK, by=by, progress=progress)
        run.begin(target or "previous revision", current)
        try:
            with run.step("rolling restart"):
                for service in layout.services:
                    back = engine.roll(service, _image(layout, target)) if target else engine.undo(service, "")
                    for command in back:
                        _run(run, command)
        except DeployError as exc:
            return run.finish(Result.FAILED, str(exc))
        return run.finish(Result.SUCCEEDED)


def _previous_version(layout: Layout, current: str) -> str:
    last = (Deployment.objects.filter(layout=layout.kind, result=Result.SUCCEEDED).exclude(version=current)
            .values_list("version", flat=True).first())  # fmt: skip
    return last or ""


def status(layout: Layout) -> list[str]:
    current = current_version(layout)
    return [f"current: {current or '-'} ({layout.kind})", f"previous: {_previous_version(layout, current) or '-'}",
            f"services: {', '.join(layout.services)}"]  # fmt: skip


def plan(layout: Layout, tag: str) -> list[list[str]]:
    """The engine commands a deploy of ``tag`` runs, in order (without the gate and backup)."""
    engine, image = engine_of(layout), _image(layout, tag)
    commands = [engine.in_image(image, "check", "--deploy", "--fail-level", "ERROR"),
                engine.in_image(image, "migrate", "--plan"), *engine.migrate(image)]  # fmt: skip
    for service in layout.services:
        commands += engine.roll(service, image)
    return [c.argv for c in commands]
