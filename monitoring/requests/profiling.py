"""On-demand profiling of one request, the next N requests of a route, or the next runs of a task.

Nothing is hooked into the request path unless asked: the middleware looks at one header or
query flag and at a set of armed routes that a background thread keeps (no I/O per request).
An armed run is claimed with a conditional UPDATE, so N means N across all processes.
"""

from __future__ import annotations

import cProfile
import io
import logging
import marshal
import pstats
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import F
from django.http import HttpRequest, HttpResponseBase
from django.utils import timezone

from common.background import BackgroundLoop
from common.context import current_request
from common.http import ApiError
from monitoring.requests.models import Profile, ProfileArm

log = logging.getLogger(__name__)
PROFILERS = frozenset(Profile.Profiler.values)


class Recorder:
    """One running profiler, either kind, with one way to stop it and keep what it found."""

    def __init__(self, profiler: str) -> None:
        self.profiler = profiler
        self._pyinstrument: Any = None
        self._cprofile: cProfile.Profile | None = None

    def start(self) -> None:
        if self.profiler == Profile.Profiler.PYINSTRUMENT:
            from pyinstrument import Profiler

            self._pyinstrument = Profiler(interval=0.001, async_mode="disabled")
            self._pyinstrument.start()
        else:
            self._cprofile = cProfile.Profile()
            self._cprofile.enable()

    def stop(self, *, elapsed_s: float) -> dict[str, Any]:
        """Stop and render: the fields of a Profile row (html, speedscope, pstats, truncated).

        A run longer than OPSITE_PROFILE_MAX_S is not rendered: its tree would be too large to
        render or read, and rendering it would tie up the worker."""
        limit = settings.OPSITE_PROFILE_MAX_BYTES
        if elapsed_s > settings.OPSITE_PROFILE_MAX_S:
            if self._pyinstrument is not None:
                self._pyinstrument.stop()
            elif self._cprofile is not None:
                self._cprofile.disable()
            note = (
                f"<p>The run took {elapsed_s:.1f} s, over the {settings.OPSITE_PROFILE_MAX_S:g} s limit; not kept.</p>"
            )
            return {"html": note, "speedscope": "", "pstats": b"", "truncated": True}
        if self._pyinstrument is not None:
            from pyinstrument.renderers import SpeedscopeRenderer

            session = self._pyinstrument.stop()
            html = self._pyinstrument.output_html()
            speedscope = SpeedscopeRenderer().render(session)
            return _capped({"html": html, "speedscope": speedscope, "pstats": b""}, limit)
        assert self._cprofile is not None
        self._cprofile.disable()
        out = io.StringIO()
        stats = pstats.Stats(self._cprofile, stream=out)
        stats.sort_stats("cumulative").print_stats(60)
        raw = marshal.dumps(stats.stats)  # type: ignore[attr-defined]
        return _capped({"html": f"<pre>{_escape(out.getvalue())}</pre>", "speedscope": "", "pstats": raw}, limit)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _capped(fields: dict[str, Any], limit: int) -> dict[str, Any]:
    truncated = False
    for name in ("html", "speedscope", "pstats"):
        if len(fields[name]) > limit:
            fields[name] = "" if name != "pstats" else b""
            truncated = True
    if truncated and not fields["html"]:
        fields["html"] = f"<p>The profile was larger than {limit} bytes and was not kept; profile a shorter run.</p>"
    fields["truncated"] = truncated
    return fields


def requested_profiler(meta: dict[str, Any]) -> str | None:
    """The profiler a request asks for by header or query flag, or None when it asks for none."""
    asked = meta.get("HTTP_X_OPSITE_PROFILE")
    if asked is None:
        query = meta.get("QUERY_STRING", "")
        if "_profile=" not in query:
            return None
        from urllib.parse import parse_qs

        asked = parse_qs(query).get("_profile", [""])[0]
    asked = asked.strip().lower()
    return Profile.Profiler.PYINSTRUMENT if asked in ("", "1", "true", "yes") else asked


def may_profile(user: Any) -> bool:
    return bool(
        getattr(user, "is_authenticated", False) and user.is_staff and user.has_perm("monitoring.profile_requests")
    )


@dataclass(frozen=True)
class ArmedTargets:
    routes: frozenset[str]
    tasks: frozenset[str]


class ArmWatcher:
    """Keeps the set of armed routes and tasks fresh from a background thread."""

    def __init__(self) -> None:
        self.current = ArmedTargets(frozenset(), frozenset())
        self.loop = BackgroundLoop("opsite-profile-arms", self.refresh, lambda: settings.OPSITE_PROFILE_ARM_REFRESH_S)

    def ensure_running(self) -> None:
        self.loop.ensure_running()

    def refresh(self) -> None:
        rows = ProfileArm.objects.filter(remaining__gt=0, expires_at__gt=timezone.now()).values_list("target", "name")
        arms = list(rows)
        self.current = ArmedTargets(
            routes=frozenset(n for t, n in arms if t == ProfileArm.Target.ROUTE),
            tasks=frozenset(n for t, n in arms if t == ProfileArm.Target.TASK),
        )


watcher = ArmWatcher()


def claim(target: str, name: str) -> str | None:
    """Take one run from an arm for this route or task; the profiler to use, or None."""
    now = timezone.now()
    for arm in ProfileArm.objects.filter(target=target, name=name, remaining__gt=0, expires_at__gt=now):
        if ProfileArm.objects.filter(pk=arm.pk, remaining__gt=0).update(remaining=F("remaining") - 1):
            return arm.profiler
    return None


def profile_save(**fields: Any) -> Profile:
    profile = Profile.objects.create(**fields)
    profile_retention()
    return profile


def profile_retention() -> int:
    keep = Profile.objects.order_by("-created_at").values_list("pk", flat=True)[: settings.OPSITE_PROFILE_KEEP]
    cutoff = timezone.now() - timedelta(days=settings.OPSITE_PROFILE_KEEP_DAYS)
    stale = Profile.objects.exclude(pk__in=list(keep)) | Profile.objects.filter(created_at__lt=cutoff)
    deleted, _ = stale.delete()
    return deleted


def run_profiled(profiler: str, call: Callable[[], Any]) -> tuple[Any, dict[str, Any], float]:
    recorder = Recorder(profiler)
    started = time.perf_counter()
    recorder.start()
    try:
        result = call()
    finally:
        fields = recorder.stop(elapsed_s=time.perf_counter() - started)
    return result, fields, (time.perf_counter() - started) * 1000


_task_runs: dict[str, tuple[Recorder, float, str]] = {}


def on_task_prerun(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    watcher.ensure_running()
    if task is None or task_id is None or task.name not in watcher.current.tasks:
        return
    profiler = claim("task", task.name)
    if profiler is None:
        return
    recorder = Recorder(profiler)
    recorder.start()
    _task_runs[task_id] = (recorder, time.perf_counter(), profiler)


def on_task_postrun(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    run = _task_runs.pop(task_id or "", None)
    if run is None or task is None:
        return
    recorder, started, profiler = run
    fields = recorder.stop(elapsed_s=time.perf_counter() - started)
    profile_save(kind=Profile.Kind.TASK, name=task.name, profiler=profiler, request_id=task_id or "",
                 duration_ms=(time.perf_counter() - started) * 1000, **fields)  # fmt: skip


def profile_view_if_asked(
    request: HttpRequest, view: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> HttpResponseBase | None:
    """Run the view under a profiler when a permitted user asks or its route is armed; else None.

    Called from the request middleware's ``process_view``, which Django calls after every
    middleware (authentication included) has run and the route is known."""
    watcher.ensure_running()
    meta = request.META
    armed = watcher.current.routes
    if not armed and "HTTP_X_OPSITE_PROFILE" not in meta and "_profile=" not in meta.get("QUERY_STRING", ""):
        return None  # the common case: two lookups, nothing else
    asked = requested_profiler(meta)
    route = f"{request.method} /{request.resolver_match.route}" if request.resolver_match else ""
    if asked is None and route not in armed:
        return None
    if asked is not None:
        if asked not in PROFILERS:
            return ApiError(400, "invalid", f"profiler must be one of {sorted(PROFILERS)}").response()
        if not may_profile(request.user):
            return ApiError(403, "forbidden", "profiling needs the profile_requests permission").response()
        profiler = asked
    else:
        claimed = claim("route", route)
        if claimed is None:
            return None
        profiler = claimed
    response, fields, ms = run_profiled(profiler, lambda: view(request, *args, **kwargs))
    state = current_request.get()
    profile = profile_save(
        kind=Profile.Kind.REQUEST, name=route, profiler=profiler, request_id=state.request_id if state else "",
        method=request.method or "", path=request.path[:500], status_code=response.status_code, duration_ms=ms,
        queries=state.queries if state else 0, query_ms=state.query_ms if state else 0.0,
        user=request.user if request.user.is_authenticated else None, **fields,
    )  # fmt: skip
    response["X-Opsite-Profile-Id"] = str(profile.pk)
    return response
