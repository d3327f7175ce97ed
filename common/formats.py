"""Values as people read them on the admin pages: durations in their largest sensible unit
(93600 s is "26 h"), measurements rounded with their unit, byte counts in KiB/MiB, and JSON
manifests (row counts, migrations, a deploy's steps) as small tables rather than raw JSON."""

from __future__ import annotations

from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

_UNITS = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))


def duration(seconds: float | None) -> str:
    """One or two units, largest first: 45 s, 2 min 30 s, 26 h, 1 d 2 h; "-" when unknown."""
    if seconds is None:
        return "-"
    if abs(seconds) >= 365 * 86400:  # an age counted from "never" (the epoch)
        return "over a year"
    if 0 < abs(seconds) < 10:
        return f"{seconds:.3g} s"
    left = round(abs(seconds))
    parts: list[str] = []
    for unit, size in _UNITS:
        if left >= size or (unit == "s" and not parts):
            parts.append(f"{left // size} {unit}")
            left %= size
        if len(parts) == 2:
            break
    # "26 h" rather than "1 d 2 h" when under two days reads better for thresholds
    if parts and parts[0].endswith(" d") and abs(seconds) < 2 * 86400:
        parts = [f"{round(abs(seconds)) // 3600} h"]
    return ("-" if seconds < 0 else "") + " ".join(parts)


def measurement(value: float | None, unit: str) -> str:
    """Rounded to what a reader can use, with its unit: 15.012905 % is "15.0 %"; seconds as durations."""
    if value is None:
        return "-"
    if unit == "s":
        return duration(value)
    if unit in ("", "1 = yes"):
        return f"{value:g}"
    if abs(value) >= 100 or float(value).is_integer():
        text = f"{value:,.0f}"
    elif abs(value) >= 1:
        text = f"{value:.1f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}" if unit.startswith(("%", "ms", "s")) or unit.isalpha() else f"{text}{unit}"


def size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover


def table(value: Any, headers: tuple[str, str] = ("", "")) -> SafeString:
    """A dict as two columns, a list of dicts as one row each (their keys as columns)."""
    if isinstance(value, dict) and value:
        head = format_html("<thead><tr><th scope='col'>{}</th><th scope='col'>{}</th></tr></thead>", *headers) \
            if any(headers) else ""  # fmt: skip
        body = format_html_join("", "<tr><th scope='row'>{}</th><td>{}</td></tr>",
                                ((k, _cell(v)) for k, v in value.items()))  # fmt: skip
        return format_html("<table class='manifest'>{}<tbody>{}</tbody></table>", head, body)
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        columns = list(dict.fromkeys(key for item in value for key in item))
        head = format_html_join("", "<th scope='col'>{}</th>", ((c,) for c in columns))
        rows = format_html_join("", "<tr>{}</tr>", (
            (format_html_join("", "<td>{}</td>", ((_cell(item.get(c, "")),) for c in columns)),) for item in value
        ))  # fmt: skip
        return format_html("<table class='manifest'><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", head, rows)
    if isinstance(value, list) and value:
        return format_html(
            "<ul class='manifest'>{}</ul>", format_html_join("", "<li>{}</li>", ((_cell(v),) for v in value))
        )
    return format_html("{}", "-" if value in (None, {}, [], "") else value)


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, (dict, list)):
        return table(value)
    return value
