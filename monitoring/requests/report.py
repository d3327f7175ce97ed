"""The slow-statement report: the heaviest statements of a time range by total time, mean time or
count, each with the routes that ran it as an N+1 and, on request, the index advisor's
suggestions (``manage.py query_report``)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

from monitoring.requests.advisor import AdvisorUnavailable, suggest
from monitoring.requests.queries import KEEP_MINUTES, SORTS, n_plus_one_suspects, top_queries

FORMATS = ("text", "json", "csv")


class ReportError(ValueError):
    """A range or option the report cannot be made for; the message says which."""


def statement_report(*, minutes: int, until: datetime | None = None, sort: str = "total", limit: int = 20,
                     with_advice: bool = False, allow_trial: bool = True, now: datetime | None = None
                     ) -> dict[str, Any]:  # fmt: skip
    now = now or datetime.now(UTC)
    until = until or now
    if sort not in SORTS:
        raise ReportError(f"sort by one of {', '.join(SORTS)}, not {sort!r}")
    if not 1 <= minutes <= KEEP_MINUTES:
        raise ReportError(f"the range is 1 to {KEEP_MINUTES} minutes (statement statistics are kept that long)")
    if not 1 <= limit <= 500:
        raise ReportError("the limit is 1 to 500 statements")
    if until > now:
        raise ReportError("the range cannot end in the future")
    last_minute = int(until.timestamp()) // 60
    if last_minute - minutes + 1 < int(now.timestamp()) // 60 - KEEP_MINUTES + 1:
        raise ReportError(f"statement statistics are kept for {KEEP_MINUTES} minutes; that range starts before")
    statements = top_queries(minutes, limit, sort=sort, last_minute=last_minute)
    routes: dict[str, list[dict[str, Any]]] = {}
    for suspect in n_plus_one_suspects(minutes, last_minute=last_minute):
        routes.setdefault(suspect["fingerprint"], []).append({"route": suspect["route"],
                                                               "requests": suspect["requests"]})  # fmt: skip
    for row in statements:
        row["n_plus_one_routes"] = routes.get(row["fingerprint"], [])
        if with_advice:
            row["advice"] = _advice(row["sql"], allow_trial)
    start = datetime.fromtimestamp((last_minute - minutes + 1) * 60, tz=UTC)
    end = datetime.fromtimestamp((last_minute + 1) * 60, tz=UTC)
    return {"from": start.isoformat(), "to": end.isoformat(), "sort": sort, "statements": statements}


def _advice(sql: str, allow_trial: bool) -> dict[str, Any]:
    if not sql.lstrip().lower().startswith("select"):
        return {"suggestions": [], "note": "only SELECT statements are advised on"}
    try:
        return {"suggestions": [s.as_dict() for s in suggest(sql, allow_trial=allow_trial)]}
    except AdvisorUnavailable as exc:
        return {"suggestions": [], "note": str(exc)}
    except Exception as exc:  # one statement the planner refuses must not end the report
        return {"suggestions": [], "note": f"could not be planned: {type(exc).__name__}: {exc}"}


def render(report: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report, indent=2, default=str)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        header = ["fingerprint", "count", "total_ms", "mean_ms", "max_ms", "share_pct", "n_plus_one_routes",
                  "suggested_indexes", "sql"]  # fmt: skip
        writer.writerow(header)
        for row in report["statements"]:
            advice = row.get("advice", {}).get("suggestions", [])
            writer.writerow([row["fingerprint"], row["count"], row["total_ms"], row["mean_ms"], row["max_ms"],
                             row["share_pct"], ";".join(r["route"] for r in row["n_plus_one_routes"]),
                             ";".join(f"{s['ddl']} (-{s['gain_pct']} %)" for s in advice), row["sql"]])  # fmt: skip
        return out.getvalue()
    by = "count" if report["sort"] == "count" else f"{report['sort']} time"
    lines = [f"statements from {report['from']} to {report['to']}, by {by}"]
    if not report["statements"]:
        lines.append("no statements in that range")
    for row in report["statements"]:
        figures = (f"{row['count']:>7} runs  {row['total_ms']:>10.1f} ms total  {row['mean_ms']:>8.2f} ms mean  "
                   f"{row['max_ms']:>8.1f} ms max  {row['share_pct']:>5.1f} %")  # fmt: skip
        lines.append(f"{row['fingerprint']}  {figures}")
        lines.append(f"    {row['sql'][:300]}")
        for route in row["n_plus_one_routes"]:
            lines.append(f"    N+1 in {route['route']} ({route['requests']} requests)")
        for tip in row.get("advice", {}).get("suggestions", []):
            cost = f"cost {tip['cost_before']} -> {tip['cost_after']} (-{tip['gain_pct']} %, {tip['method']})"
            lines.append(f"    index: {tip['ddl']}  {cost}")
        if row.get("advice", {}).get("note"):
            lines.append(f"    advice: {row['advice']['note']}")
    return "\n".join(lines) + "\n"
