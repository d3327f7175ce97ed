"""A deployment layout, read from a TOML file: where the releases live and which processes run
them (the plain-process layout), or which compose services or Kubernetes deployments to roll,
and the health gate a release has to pass.

::

    kind = "plain"                 # plain | compose | kubernetes
    root = "/srv/opsite"           # releases/, current, previous, run/ (relative to this file)
    env_file = "/srv/opsite/env"   # KEY=VALUE lines for every process and command (optional)

    [[process]]                    # restarted one at a time, in this order
    name = "web-1"
    command = ".venv/bin/gunicorn opsite.wsgi:application -b 127.0.0.1:8101"
    ready_url = "http://127.0.0.1:8101/health/ready"

    [gate]
    metrics_urls = ["http://127.0.0.1:8101/metrics"]
    settle_s = 120
"""

from __future__ import annotations

import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KINDS = ("plain", "compose", "kubernetes")
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_")


class LayoutError(ValueError):
    """The layout file is missing or wrong; the message is one line."""


@dataclass(frozen=True)
class Process:
    name: str
    command: list[str]
    ready_url: str = ""
    ready_command: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    start_timeout_s: float = 60.0
    stop_timeout_s: float = 60.0


@dataclass(frozen=True)
class Gate:
    """Error rate and p95 of the new release's requests over ``settle_s`` seconds after the
    rollout, read from these ``/metrics`` addresses (one per host: the processes of a host share
    their metric files). Health probes and scrapes are not counted."""

    metrics_urls: list[str]
    settle_s: float = 120.0
    max_error_rate: float = 0.05
    max_p95_ms: float = 1000.0
    min_requests: int = 0


@dataclass(frozen=True)
class Layout:
    path: Path
    kind: str
    root: Path
    env_file: Path | None
    python: str
    processes: list[Process]
    gate: Gate
    backup_max_age_h: float
    warm_cache: bool
    compose_file: Path | None = None
    services: list[str] = field(default_factory=list)
    image: str = ""
    namespace: str = ""
    migrate_job: Path | None = None

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def current(self) -> Path:
        return self.root / "current"

    @property
    def previous(self) -> Path:
        return self.root / "previous"

    def environment(self) -> dict[str, str]:
        """The env file's variables (empty without one)."""
        return read_env_file(self.env_file) if self.env_file else {}


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and # comments skipped; values may be quoted."""
    values: dict[str, str] = {}
    try:
        text = path.read_text()
    except OSError as exc:
        raise LayoutError(f"cannot read the env file {path}: {exc.strerror}") from exc
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        if not sep or not key.strip().isidentifier():
            raise LayoutError(f"{path}:{number}: expected KEY=VALUE, got {line[:60]!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def _get(table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any = None) -> Any:
    value = table.get(key, default)
    if value is None:
        raise LayoutError(f"{where}: {key} is required")
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise LayoutError(f"{where}: {key} must be {expected}, not {value!r}")
    return value


def _command(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        try:
            argv = shlex.split(value)
        except ValueError as exc:
            raise LayoutError(f"{where}: {exc}") from exc
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        argv = list(value)
    else:
        raise LayoutError(f"{where}: a command is a string or a list of strings")
    if not argv:
        raise LayoutError(f"{where}: the command is empty")
    return argv


def _process(raw: Any, index: int) -> Process:
    where = f"process {index + 1}"
    if not isinstance(raw, dict):
        raise LayoutError(f"{where}: expected a table")
    name = _get(raw, "name", str, where)
    if not name or set(name) - _NAME_CHARS:
        raise LayoutError(f"{where}: name {name!r} may hold only a-z, 0-9, - and _")
    where = f"process {name}"
    unknown = set(raw) - {"name", "command", "ready_url", "ready_command", "env", "start_timeout_s",
                          "stop_timeout_s"}  # fmt: skip
    if unknown:
        raise LayoutError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    env = _get(raw, "env", dict, where, {})
    if not all(isinstance(v, str) for v in env.values()):
        raise LayoutError(f"{where}: env values must be strings")
    ready_url = _get(raw, "ready_url", str, where, "")
    if ready_url and not ready_url.startswith(("http://", "https://")):
        raise LayoutError(f"{where}: ready_url must be an http:// or https:// address")
    start_timeout = float(_get(raw, "start_timeout_s", (int, float), where, 60))
    stop_timeout = float(_get(raw, "stop_timeout_s", (int, float), where, 60))
    if not (0 < start_timeout <= 3600 and 0 < stop_timeout <= 3600):
        raise LayoutError(f"{where}: timeouts must be over 0 and at most 3600 seconds")
    return Process(
        name=name, command=_command(raw.get("command"), f"{where}: command"), ready_url=ready_url,
        ready_command=_command(raw["ready_command"], f"{where}: ready_command") if "ready_command" in raw else [],
        env=env, start_timeout_s=start_timeout, stop_timeout_s=stop_timeout,
    )  # fmt: skip


def _gate(raw: Any) -> Gate:
    if not isinstance(raw, dict):
        raise LayoutError("gate: expected a table")
    unknown = set(raw) - {"metrics_urls", "settle_s", "max_error_rate", "max_p95_ms", "min_requests"}
    if unknown:
        raise LayoutError(f"gate: unknown keys {', '.join(sorted(unknown))}")
    urls = _get(raw, "metrics_urls", list, "gate", [])
    if not all(isinstance(u, str) and u.startswith(("http://", "https://")) for u in urls):
        raise LayoutError("gate: metrics_urls must be http:// or https:// addresses")
    gate = Gate(
        metrics_urls=urls,
        settle_s=float(_get(raw, "settle_s", (int, float), "gate", 120)),
        max_error_rate=float(_get(raw, "max_error_rate", (int, float), "gate", 0.05)),
        max_p95_ms=float(_get(raw, "max_p95_ms", (int, float), "gate", 1000)),
        min_requests=int(_get(raw, "min_requests", int, "gate", 0)),
    )
    if not 0 <= gate.settle_s <= 3600:
        raise LayoutError("gate: settle_s must be 0 to 3600 seconds")
    if not 0 <= gate.max_error_rate <= 1:
        raise LayoutError("gate: max_error_rate is a share, 0 to 1 (0.05 is 5 %)")
    if gate.max_p95_ms <= 0 or gate.min_requests < 0:
        raise LayoutError("gate: max_p95_ms must be over 0 and min_requests 0 or more")
    return gate


def load(path: Path) -> Layout:
    """The layout in ``path``; LayoutError with one line when it cannot be used."""
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        raise LayoutError(f"cannot read the layout {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise LayoutError(f"{path} is not valid TOML: {exc}") from exc
    base = path.resolve().parent
    kind = _get(raw, "kind", str, "layout", "plain")
    if kind not in KINDS:
        raise LayoutError(f"layout: kind must be one of {', '.join(KINDS)}, not {kind!r}")
    unknown = set(raw) - {"kind", "root", "env_file", "python", "process", "gate", "backup_max_age_h", "warm_cache",
                          "compose_file", "services", "image", "namespace", "migrate_job"}  # fmt: skip
    if unknown:
        raise LayoutError(f"layout: unknown keys {', '.join(sorted(unknown))}")
    processes = [_process(p, i) for i, p in enumerate(_get(raw, "process", list, "layout", []))]
    names = [p.name for p in processes]
    if len(set(names)) != len(names):
        raise LayoutError("layout: two processes have the same name")
    if kind == "plain" and not processes:
        raise LayoutError("layout: a plain layout needs at least one [[process]]")
    services = _get(raw, "services", list, "layout", [])
    if kind != "plain" and not services:
        raise LayoutError(f"layout: a {kind} layout needs services = [...] (the services or deployments to roll)")
    env_file = raw.get("env_file")
    backup_max_age_h = float(_get(raw, "backup_max_age_h", (int, float), "layout", 24))
    if backup_max_age_h < 0:
        raise LayoutError("layout: backup_max_age_h must be 0 or more (0 takes a backup on every deploy)")
    compose_file = raw.get("compose_file")
    migrate_job = raw.get("migrate_job")
    return Layout(
        path=path.resolve(), kind=kind, root=base / _get(raw, "root", str, "layout", "."),
        env_file=base / _get(raw, "env_file", str, "layout") if env_file is not None else None,
        python=_get(raw, "python", str, "layout", ".venv/bin/python"), processes=processes,
        gate=_gate(raw.get("gate", {})), backup_max_age_h=backup_max_age_h,
        warm_cache=_get(raw, "warm_cache", bool, "layout", True),
        compose_file=base / _get(raw, "compose_file", str, "layout") if compose_file is not None else None,
        services=[str(s) for s in services], image=_get(raw, "image", str, "layout", "opsite"),
        namespace=_get(raw, "namespace", str, "layout", "default"),
        migrate_job=base / _get(raw, "migrate_job", str, "layout") if migrate_job is not None else None,
    )  # fmt: skip
