"""The query advisor on the real Postgres: candidate indexes from a statement's generic plan,
tried with HypoPG or a rolled-back trial index, unused and duplicate indexes; the slow-statement
report by total, mean and count with N+1 routes as text, JSON and CSV; bad input refused."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from monitoring.requests.advisor import duplicate_indexes, suggest, unused_indexes
from monitoring.requests.models import QueryFingerprint
from monitoring.requests.queries import get_aggregator, unobserved
from monitoring.requests.report import ReportError, render, statement_report
from tests.conftest import _need, manage_py, refused_in_one_line

pytestmark = pytest.mark.django_db
PROBE = (
    'SELECT "probe"."id", "probe"."n" FROM "probe" WHERE "probe"."kind" = %s ORDER BY "probe"."placed_at" DESC LIMIT %s'
)


def setup_sql(*statements: str) -> None:
    """The test's own set-up, kept out of the query statistics other tests read."""
    with unobserved(), connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


@pytest.fixture
def probe_table(needs_postgres):
    setup_sql("CREATE TABLE probe (id serial PRIMARY KEY, kind text, placed_at timestamptz, n int)",
              "INSERT INTO probe (kind, placed_at, n) SELECT 'k' || (g % 50), now() - g * interval '1 s', g"
              " FROM generate_series(1, 30000) g", "ANALYZE probe")  # fmt: skip
    return "probe"


def indexes_of(table: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s", [table])
        return {row[0] for row in cursor.fetchall()}


def hypopg_installed() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'hypopg'")
        return cursor.fetchone() is not None


def test_hypothetical_indexes_rank_the_filter_and_sort_columns_first(probe_table):
    _need("HypoPG (Debian's postgresql-<version>-hypopg)", hypopg_installed())
    before = indexes_of("probe")
    tips = suggest(PROBE, use_hypopg=True)
    best = tips[0]
    assert (best.candidate.columns, best.method) == (("kind", "placed_at"), "hypopg")
    assert best.gain_pct > 50 and best.cost_after < best.cost_before
    assert {t.candidate.columns for t in tips} >= {("kind",), ("placed_at",)}
    assert indexes_of("probe") == before, "nothing is left behind"


def test_without_hypopg_a_trial_index_is_built_and_rolled_back(probe_table):
    before = indexes_of("probe")
    tips = suggest(PROBE, use_hypopg=False)
    assert tips and tips[0].method == "trial index" and tips[0].candidate.columns == ("kind", "placed_at")
    assert indexes_of("probe") == before
    get_aggregator().flush()
    assert not QueryFingerprint.objects.filter(normalized__contains='CREATE INDEX ON "probe"').exists(), (
        "the advisor's own statements are not the application's load"
    )


def test_nothing_is_built_where_trials_are_not_allowed(probe_table):
    assert suggest(PROBE, use_hypopg=False, allow_trial=False) == []  # (view-only staff in the admin)


def test_large_tables_are_not_tried_without_hypopg(probe_table, settings):
    settings.OPSITE_ADVISOR_TRIAL_MAX_ROWS = 1000
    assert suggest(PROBE, use_hypopg=False) == []


def test_an_index_that_already_leads_with_the_column_is_no_candidate(probe_table):
    setup_sql("CREATE INDEX probe_kind_placed ON probe (kind, placed_at DESC)", "ANALYZE probe")
    assert all(t.candidate.columns[0] != "kind" for t in suggest(PROBE, use_hypopg=False))


def test_only_selects_are_advised_on(probe_table):
    with pytest.raises(ValueError, match="only SELECT"):
        suggest("DELETE FROM probe WHERE kind = %s")


def test_unused_and_duplicate_indexes_are_listed(probe_table):
    setup_sql(
        "CREATE INDEX probe_n ON probe (n)",
        "CREATE INDEX probe_n_kind ON probe (n, kind)",
        "CREATE UNIQUE INDEX probe_id_n ON probe (id, n)",
    )
    unused = {row["index"] for row in unused_indexes()}
    assert {"probe_n", "probe_n_kind"} <= unused and "probe_id_n" not in unused and "probe_pkey" not in unused
    duplicates = {row["index"]: row["covered_by"] for row in duplicate_indexes() if row["table"] == "probe"}
    assert duplicates == {"probe_n": "probe_n_kind"}


def record(sql: str, ms: float, times: int) -> None:
    for _ in range(times):
        get_aggregator().add(sql, ms)


def test_the_report_sorts_by_total_mean_or_count_with_n_plus_one_routes(probe_table, needs_redis):
    many = "SELECT id FROM probe WHERE n = 1"
    slow = "SELECT count(*) FROM probe WHERE kind = 'k1'"
    record(many, 0.01, 50)  # 0.5 ms in all, 0.01 ms each (small: other tests read the top statements)
    record(slow, 0.4, 2)  # 0.8 ms in all, 0.4 ms each
    get_aggregator().add_n_plus_one("GET /orders/", many)
    get_aggregator().flush()
    by = {
        sort: [r["sql"] for r in statement_report(minutes=2, sort=sort, limit=500)["statements"]]
        for sort in ("total", "mean", "count")
    }
    assert by["total"].index("SELECT count(*) FROM probe WHERE kind = ?") < by["total"].index(
        "SELECT id FROM probe WHERE n = ?"
    )
    assert by["mean"].index("SELECT count(*) FROM probe WHERE kind = ?") < by["mean"].index(
        "SELECT id FROM probe WHERE n = ?"
    )
    assert by["count"].index("SELECT id FROM probe WHERE n = ?") < by["count"].index(
        "SELECT count(*) FROM probe WHERE kind = ?"
    )
    report = statement_report(minutes=2, limit=500, with_advice=True)
    rows = {r["sql"]: r for r in report["statements"]}
    counted = rows["SELECT count(*) FROM probe WHERE kind = ?"]
    assert counted["count"] == 2 and counted["total_ms"] == 0.8 and counted["share_pct"] > 0
    assert rows["SELECT id FROM probe WHERE n = ?"]["n_plus_one_routes"] == [{"route": "GET /orders/", "requests": 1}]
    assert any(t["columns"] == ["kind"] for t in counted["advice"]["suggestions"])
    as_json = json.loads(render(report, "json"))
    assert as_json["statements"][0]["fingerprint"] == report["statements"][0]["fingerprint"]
    table = list(csv.DictReader(io.StringIO(render(report, "csv"))))
    assert {row["sql"] for row in table} >= set(rows) and "GET /orders/" in {r["n_plus_one_routes"] for r in table}
    text = render(report, "text")
    assert "N+1 in GET /orders/" in text and 'CREATE INDEX ON "probe" ("kind")' in text


def test_the_admin_advisor_page_and_the_suggest_action(probe_table, admin_client, needs_redis):
    page = admin_client.get("/admin/monitoring/queryfingerprint/advisor/")
    assert page.status_code == 200
    assert b"Unused indexes" in page.content and b"Duplicate indexes" in page.content
    with connection.cursor() as cursor:  # the application's statement, observed as any other
        cursor.execute("SELECT id FROM probe WHERE kind = %s", ["k2"])
    get_aggregator().flush()
    row = QueryFingerprint.objects.get(normalized="SELECT id FROM probe WHERE kind = %s")
    response = admin_client.post("/admin/monitoring/queryfingerprint/",
                                 {"action": "suggest_indexes", "_selected_action": [row.pk]}, follow=True)  # fmt: skip
    shown = [str(m) for m in response.context["messages"]]
    assert any('CREATE INDEX ON "probe" ("kind")' in m and "plan cost" in m for m in shown), shown


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [({"minutes": 0}, "1 to 70 minutes"), ({"minutes": 71}, "1 to 70 minutes"), ({"minutes": 5, "sort": "max"},
     "sort by one of"), ({"minutes": 5, "until": datetime.now(UTC) + timedelta(hours=1)}, "future"),
     ({"minutes": 30, "until": datetime.now(UTC) - timedelta(hours=1)}, "kept for 70 minutes")],
)  # fmt: skip
def test_a_range_it_cannot_report_is_refused(kwargs, says):
    with pytest.raises(ReportError, match=says):
        statement_report(**kwargs)


@pytest.mark.parametrize(
    ("args", "says"),
    [(["--minutes", "0"], "1 to 70 minutes"), (["--until", "yesterday"], "ISO 8601 with a zone"),
     (["--format", "xml"], "invalid choice"), (["--until", "2026-12-01T10:00:00"], "ISO 8601 with a zone")],
)  # fmt: skip
def test_the_command_refuses_bad_input_in_one_line(args, says):
    assert refused_in_one_line(manage_py("query_report", *args), says)
