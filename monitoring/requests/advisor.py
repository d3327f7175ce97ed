"""The index advisor (Postgres): for a slow statement, the columns its plan filters, joins and
sorts on without a usable index, each candidate index tried — as a hypothetical index with
HypoPG when the server has it, else built for real in a transaction that is rolled back (only on
small tables, with a lock timeout) — and the plan's cost before and after; and the indexes that
are never used or that another index already covers.

Everything runs on the generic plan of the normalized statement (no value is ever needed) and
inside transactions that are always rolled back.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connections, transaction

from monitoring.requests.queries import generic_plan_rows, unobserved

MIN_GAIN = 0.10  # a candidate that saves less than this share of the plan's cost is not suggested
_IDENTIFIER = re.compile(r'"?([a-z_][a-z0-9_$]*)"?(?=\s*(?:\)|=|<|>|~|!|\s|$|::|,))', re.IGNORECASE)
_QUALIFIED = re.compile(r'"?([a-z_][a-z0-9_$]*)"?\."?([a-z_][a-z0-9_$]*)"?', re.IGNORECASE)


class AdvisorUnavailable(RuntimeError):
    """The advisor needs Postgres."""


@dataclass(frozen=True)
class Candidate:
    table: str
    columns: tuple[str, ...]
    reason: str  # filter, join, sort, or filter+sort

    @property
    def ddl(self) -> str:
        cols = ", ".join(_quote(c) for c in self.columns)
        return f"CREATE INDEX ON {_quote(self.table)} ({cols})"


@dataclass(frozen=True)
class Suggestion:
    candidate: Candidate
    cost_before: float
    cost_after: float
    method: str  # "hypopg" or "trial index"

    @property
    def gain_pct(self) -> float:
        return round(100 * (self.cost_before - self.cost_after) / self.cost_before, 1) if self.cost_before else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"table": self.candidate.table, "columns": list(self.candidate.columns),
                "reason": self.candidate.reason, "ddl": self.candidate.ddl, "cost_before": self.cost_before,
                "cost_after": self.cost_after, "gain_pct": self.gain_pct, "method": self.method}  # fmt: skip


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _require_postgres() -> Any:
    connection = connections["default"]
    if connection.vendor != "postgresql":
        raise AdvisorUnavailable("the index advisor needs Postgres")
    return connection


class _Rollback(Exception):
    pass


def _plan(cursor: Any, normalized: str) -> dict[str, Any]:
    rows = generic_plan_rows(cursor, normalized, options="(FORMAT JSON)")
    document = rows[0][0]
    return dict(document[0]["Plan"]) if isinstance(document, list) else dict(document)


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []) or []:
        yield from _nodes(child)


def _columns_of(cursor: Any, tables: set[str]) -> dict[str, set[str]]:
    cursor.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = ANY(%s)",
        [list(tables)],
    )
    found: dict[str, set[str]] = {t: set() for t in tables}
    for table, column in cursor.fetchall():
        found[table].add(column)
    return found


def _index_prefixes(cursor: Any, tables: set[str]) -> dict[str, list[tuple[str, ...]]]:
    """Each table's indexes as their column lists (expression and partial indexes left out)."""
    cursor.execute(
        """
        SELECT t.relname, array_agg(a.attname ORDER BY k.ord)
        FROM pg_index i
        JOIN pg_class t ON t.oid = i.indrelid
        JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
        JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
        WHERE t.relname = ANY(%s) AND i.indexprs IS NULL AND i.indpred IS NULL
        GROUP BY t.relname, i.indexrelid
        """,
        [list(tables)],
    )
    found: dict[str, list[tuple[str, ...]]] = {t: [] for t in tables}
    for table, columns in cursor.fetchall():
        found[table].append(tuple(columns))
    return found


def _sort_column(key: str, scans: dict[str, str], columns: dict[str, set[str]]) -> tuple[str | None, str]:
    """The scanned table and column a sort key names: ``alias.column``, or a bare column (as a
    plan of one table writes it) that exactly one scanned table has."""
    qualified = _QUALIFIED.match(key)
    if qualified:
        table = scans.get(qualified.group(1))
        name = qualified.group(2)
        return (table if table and name in columns[table] else None), name
    bare = _IDENTIFIER.match(key)
    if bare is None:
        return None, ""
    owners = {table for table in scans.values() if bare.group(1) in columns[table]}
    return (owners.pop() if len(owners) == 1 else None), bare.group(1)


def candidates(cursor: Any, plan: dict[str, Any]) -> list[Candidate]:
    """Index candidates for the sequential scans of a plan: the scanned table's columns in the
    scan's filter, in join conditions, and in sort keys, that no index starts with."""
    scans: dict[str, str] = {}  # alias -> table
    filters: dict[str, list[str]] = {}
    for node in _nodes(plan):
        if node.get("Node Type") == "Seq Scan" and node.get("Relation Name"):
            table = str(node["Relation Name"])
            scans[str(node.get("Alias", table))] = table
            filters.setdefault(table, []).append(str(node.get("Filter", "")))
    if not scans:
        return []
    tables = set(scans.values())
    columns = _columns_of(cursor, tables)
    indexed = _index_prefixes(cursor, tables)
    by_table: dict[str, dict[str, list[str]]] = {t: {"filter": [], "join": [], "sort": []} for t in tables}
    for table, texts in filters.items():
        for text in texts:
            for name in _IDENTIFIER.findall(text):
                if name in columns[table] and name not in by_table[table]["filter"]:
                    by_table[table]["filter"].append(name)
    for node in _nodes(plan):
        for key in ("Hash Cond", "Merge Cond", "Join Filter"):
            for alias, name in _QUALIFIED.findall(str(node.get(key, ""))):
                joined = scans.get(alias)
                if joined and name in columns[joined] and name not in by_table[joined]["join"]:
                    by_table[joined]["join"].append(name)
        for sort_key in node.get("Sort Key", []) or []:
            sorted_table, name = _sort_column(str(sort_key), scans, columns)
            if sorted_table and name not in by_table[sorted_table]["sort"]:
                by_table[sorted_table]["sort"].append(name)
    found: list[Candidate] = []
    for table, uses in by_table.items():
        options = [Candidate(table, (c,), reason) for reason in ("filter", "join", "sort") for c in uses[reason]]
        if uses["filter"] and uses["sort"]:
            options.append(Candidate(table, (uses["filter"][0], uses["sort"][0]), "filter+sort"))
        for option in options:
            leading = indexed[table]
            covered = any(index[: len(option.columns)] == option.columns for index in leading)
            if not covered and option not in found and len(set(option.columns)) == len(option.columns):
                found.append(option)
    return found


def _hypopg(cursor: Any) -> bool:
    """Whether hypothetical indexes can be made here (creating the extension when it is
    installed on the server and not yet in this database)."""
    cursor.execute("SELECT installed_version IS NOT NULL, true FROM pg_available_extensions WHERE name = 'hypopg'")
    row = cursor.fetchone()
    if row is None:
        return False
    if not row[0]:
        try:
            with transaction.atomic():
                cursor.execute("CREATE EXTENSION IF NOT EXISTS hypopg")
        except Exception:
            return False
    return True


def _table_rows(cursor: Any, table: str) -> float:
    cursor.execute("SELECT reltuples FROM pg_class WHERE relname = %s AND relkind = 'r'", [table])
    row = cursor.fetchone()
    return float(row[0]) if row else 0.0


def suggest(normalized: str, *, use_hypopg: bool | None = None, allow_trial: bool = True) -> list[Suggestion]:
    """The candidates for one normalized SELECT that lower its plan's cost by at least
    ``MIN_GAIN``, best first. Raises AdvisorUnavailable off Postgres, ValueError for a statement
    that is not a SELECT. Its own statements are not counted in the query statistics. Without
    ``allow_trial`` nothing is ever built: only hypothetical indexes are tried."""
    with unobserved():
        return _suggest(normalized, use_hypopg, allow_trial)


def _suggest(normalized: str, use_hypopg: bool | None, allow_trial: bool) -> list[Suggestion]:
    connection = _require_postgres()
    if not normalized.lstrip().lower().startswith("select"):
        raise ValueError("only SELECT statements are advised on")
    found: list[Suggestion] = []
    with connection.cursor() as cursor:
        hypothetical = _hypopg(cursor) if use_hypopg is None else (use_hypopg and _hypopg(cursor))
        try:
            with transaction.atomic():
                cursor.execute(f"SET LOCAL statement_timeout = {int(settings.OPSITE_ADVISOR_TIMEOUT_MS)}")
                plan = _plan(cursor, normalized)
                before = float(plan["Total Cost"])
                options = candidates(cursor, plan)
                raise _Rollback
        except _Rollback:
            pass
        for option in options:
            if not hypothetical and not allow_trial:
                break  # nothing may be built here and the server has no HypoPG
            after, method = _cost_with(cursor, normalized, option, hypothetical)
            if after is not None and before > 0 and (before - after) / before >= MIN_GAIN:
                found.append(Suggestion(option, round(before, 2), round(after, 2), method))
    return sorted(found, key=lambda s: s.cost_after)


def _cost_with(cursor: Any, normalized: str, option: Candidate, hypothetical: bool) -> tuple[float | None, str]:
    """The plan's cost with the candidate index in place, and how that was found; None when
    it could not be tried (a table too large to build a trial index on without HypoPG)."""
    if not hypothetical and _table_rows(cursor, option.table) > settings.OPSITE_ADVISOR_TRIAL_MAX_ROWS:
        return None, "too large to try without HypoPG"
    cost: float | None = None
    try:
        with transaction.atomic():
            cursor.execute(f"SET LOCAL statement_timeout = {int(settings.OPSITE_ADVISOR_TIMEOUT_MS)}")
            if hypothetical:
                cursor.execute("SELECT indexrelid FROM hypopg_create_index(%s)", [option.ddl])
            else:
                cursor.execute("SET LOCAL lock_timeout = '1s'")  # never queue behind (or block) writers
                cursor.execute(option.ddl)
            cost = float(_plan(cursor, normalized)["Total Cost"])
            if hypothetical:
                cursor.execute("SELECT hypopg_reset()")
            raise _Rollback
    except _Rollback:
        pass
    return cost, "hypopg" if hypothetical else "trial index"


def unused_indexes() -> list[dict[str, Any]]:
    """Indexes never scanned since the statistics were reset (primary keys and unique indexes,
    which enforce something, left out), largest first."""
    connection = _require_postgres()
    with unobserved(), connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT s.relname, s.indexrelname, pg_relation_size(s.indexrelid), pg_get_indexdef(s.indexrelid),
                   (SELECT stats_reset FROM pg_stat_database WHERE datname = current_database())
            FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid
            WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary
            ORDER BY pg_relation_size(s.indexrelid) DESC, s.indexrelname
            """
        )
        return [{"table": t, "index": i, "size_bytes": size, "definition": d, "since": since}
                for t, i, size, d, since in cursor.fetchall()]  # fmt: skip


def duplicate_indexes() -> list[dict[str, Any]]:
    """Indexes another index of the same table and kind already covers: its columns are the
    start of the other's (a plain index; a unique one only by an identical unique one)."""
    connection = _require_postgres()
    with unobserved(), connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT t.relname, c.relname, i.indkey::text, i.indisunique, c.relam, pg_get_indexdef(i.indexrelid),
                   pg_relation_size(i.indexrelid)
            FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
            JOIN pg_namespace n ON n.oid = t.relnamespace
            WHERE n.nspname = current_schema() AND i.indexprs IS NULL AND i.indpred IS NULL
            """
        )
        rows = [(t, name, tuple(keys.split()), unique, am, definition, size)
                for t, name, keys, unique, am, definition, size in cursor.fetchall()]  # fmt: skip
    found = []
    for table, name, keys, unique, am, definition, size in rows:
        for other_table, other, other_keys, other_unique, other_am, _, _ in rows:
            if other == name or other_table != table or other_am != am:
                continue
            prefix = other_keys[: len(keys)] == keys and (len(other_keys) > len(keys) or name > other)
            if prefix and (not unique or (other_unique and other_keys == keys)):
                found.append({"table": table, "index": name, "covered_by": other, "definition": definition,
                              "size_bytes": size})  # fmt: skip
                break
    return found
