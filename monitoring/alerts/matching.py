"""Silences and mute windows: which alerts' notifications are held back right now, and why."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from monitoring.alerts.models import MuteWindow, Silence


def matches(matchers: dict[str, object], labels: dict[str, str]) -> bool:
    """Every matcher names a label and its exact value; an empty matcher set matches nothing."""
    return bool(matchers) and all(labels.get(str(k)) == str(v) for k, v in matchers.items())


def weekdays(spec: str) -> set[int]:
    return {int(day) for day in spec.replace(" ", "").split(",") if day != ""}


def window_open(window: MuteWindow, at: datetime) -> bool:
    local = at.astimezone(ZoneInfo(window.timezone))
    days, now = weekdays(window.weekdays), local.time()
    start, end = window.start_time, window.end_time
    if start <= end:
        return local.weekday() in days and start <= now < end
    # past midnight: the evening belongs to its day, the early morning to the day before
    return (local.weekday() in days and now >= start) or ((local.weekday() - 1) % 7 in days and now < end)


@dataclass
class Quiet:
    silences: list[Silence]
    windows: list[MuteWindow]
    at: datetime

    @classmethod
    def load(cls, at: datetime) -> Quiet:
        active = Silence.objects.filter(starts_at__lte=at, ends_at__gt=at)
        return cls(list(active), list(MuteWindow.objects.all()), at)

    def reason(self, labels: dict[str, str]) -> str:
        """Why notifications for these labels are held back now, or "" when they are not."""
        for silence in self.silences:
            if matches(silence.matchers, labels):
                return f"silenced until {silence.ends_at:%Y-%m-%d %H:%M} UTC by {silence.created_by}: {silence.reason}"
        for window in self.windows:
            if matches(window.matchers, labels) and window_open(window, self.at):
                return f"muted: {window.reason or 'mute window'} ({window.start_time:%H:%M}-{window.end_time:%H:%M})"
        return ""
