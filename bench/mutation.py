"""Mutation testing (cosmic-ray) of the modules that carry opsite's guarantees.

Each group below names the modules mutated and the tests that must notice: every mutant is
applied to a private copy of the tree, that group's tests run against the real Postgres and
Redis, and a mutant is killed when they fail. Groups run side by side (``--jobs``, three by
default: the tests wait on sockets and servers as much as they compute; one copy of the tree
and one kept test database each), so the whole set takes under half an hour on two cores
(28.8 minutes measured); one group takes 2 to 20 minutes. A warm runner per lane forks each
mutant's pytest from a process that has imported pytest, Django and the libraries already.

    .venv/bin/python bench/mutation.py                 # every group
    .venv/bin/python bench/mutation.py ledger alerts   # some
    .venv/bin/python bench/mutation.py --list          # the groups, their modules and tests
    .venv/bin/python bench/mutation.py --survivors feed   # again, only what survived (after new tests)

It prints the score per group and every surviving mutant (file, line, operator, the diff);
sessions are kept under ``.mutation/`` (``cr-report .mutation/<group>/session.sqlite``).
Lines that are only logging or an error message's wording carry ``# pragma: no mutate``.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import difflib
import json
import math
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / ".mutation"
VENV_BIN = ROOT / ".venv" / "bin"
TARGET = 90.0  # per cent of mutants killed, per group
PRAGMA = re.compile(r"\s*# pragma: no mutate.*$")


@dataclass(frozen=True)
class Group:
    modules: tuple[str, ...]
    tests: tuple[str, ...]
    marks: str = "not browser"


_SWEEP = "test_events_ingested_while_the_layer_is_down_arrive_when_it_returns"
GROUPS: dict[str, Group] = {
    "ingest": Group(("realtime/services/ingest.py",), ("tests/realtime/test_ingest.py",)),
    "outbox": Group(
        ("realtime/services/feed.py",),
        (
            "tests/realtime/test_outbox.py",
            f"tests/realtime/test_feed_processes.py::{_SWEEP}",
            "tests/realtime/test_ingest.py",
            "tests/realtime/test_feed_socket.py",
        ),
    ),
    "feed": Group(
        ("realtime/consumers.py", "realtime/protocol.py", "realtime/frames.py"),
        (
            "tests/realtime/test_protocol.py",
            "tests/realtime/test_feed_socket.py",
            "tests/realtime/test_socket_robustness.py",
            # in a server process, which the coverage map cannot see: run for import-time lines
            "tests/realtime/test_feed_processes.py::test_a_slow_consumer_is_closed_4008",
        ),
    ),
    "ledger": Group(("monitoring/ledger/runs.py",), ("tests/monitoring/test_ledger.py",)),
    "alerts": Group(("monitoring/alerts/evaluation.py",), ("tests/monitoring/test_alerts.py",)),
    "delivery": Group(
        ("monitoring/alerts/delivery.py",), ("tests/monitoring/test_delivery.py", "tests/monitoring/test_alerts.py")
    ),
    "backups": Group(("backups/services.py",), ("tests/backups/test_backups.py", "tests/backups/test_s3_and_admin.py")),
    "histogram": Group(
        ("monitoring/requests/histogram.py",),
        ("tests/monitoring/test_histogram.py", "tests/monitoring/test_snapshots.py"),
    ),
    "permissions": Group(
        ("monitoring/auth.py", "realtime/auth.py"),
        ("tests/opsite/test_permissions.py", "tests/realtime/test_feed_socket.py", "tests/realtime/test_ingest.py"),
    ),
    "series": Group(
        ("common/series.py", "common/tracing.py", "common/sockets.py", "monitoring/requests/series.py"),
        (
            "tests/monitoring/test_series.py",
            "tests/monitoring/test_tracing.py",
            "tests/realtime/test_outbox.py",
            # gunicorn workers, which the coverage map cannot see: run for the shared-directory lines
            "tests/monitoring/test_series_processes.py",
        ),
    ),
}

# A selective set of operators, as in the selective-mutation literature: each comparison is
# negated or moved across its boundary (== and !=, < and <=, < and >, is and is not, in and not
# in), + and -, * and /, / and //; every number ±1, True and False, and and or, not added or
# removed, loops run zero times, exceptions swapped, decorators removed (an ``atomic`` going
# away). Left out: bit-level and power replacements (the code does none, and ``X | None`` in
# annotations, never evaluated, would give only equivalent mutants), the other comparison
# swaps (subsumed by the ones kept), and the random variable replacer and inserter (another
# mutant on every run).
_COMPARISONS = (
    "Eq_NotEq|NotEq_Eq|Lt_LtE|LtE_Lt|Gt_GtE|GtE_Gt|Lt_Gt|Gt_Lt|LtE_GtE|GtE_LtE|Is_IsNot|IsNot_Is|In_NotIn|NotIn_In"
)
_ARITHMETIC = "Add_Sub|Sub_Add|Mul_Div|Div_Mul|FloorDiv_Div|Div_FloorDiv|Mod_FloorDiv"
EXCLUDED_OPERATORS = [
    rf"core/ReplaceComparisonOperator_(?!({_COMPARISONS})$)",
    rf"core/ReplaceBinaryOperator_(?!({_ARITHMETIC})$)",
    r"core/ReplaceUnaryOperator_(?!(Delete_Not|USub_UAdd)$)",
    r"core/Variable(Replacer|Inserter)",
]


PYTEST_ARGS = ["-q", "-p", "no:cacheprovider", "-p", "no:randomly", "--reuse-db", "--timeout", "120"]


def _config(name: str, group: Group) -> str:
    lines = [
        "[cosmic-ray]",
        f"module-path = {json.dumps(list(group.modules))}",
        "timeout = 300.0",
        "excluded-modules = []",
        f"test-command = {json.dumps(f'{VENV_BIN}/python {Path(__file__).resolve()} --run-tests {name}')}",
        "",
        "[cosmic-ray.distributor]",
        'name = "local"',
        "",
        "[cosmic-ray.filters.operators-filter]",
        f"exclude-operators = {json.dumps(EXCLUDED_OPERATORS)}",
    ]
    return "\n".join(lines) + "\n"


def _pytest(group: Group, tests: list[str], *, first_failure: bool = True) -> list[str]:
    return [str(VENV_BIN / "python"), "-m", "pytest", *(["-x"] if first_failure else []), *PYTEST_ARGS,
            "-m", group.marks, *tests]  # fmt: skip


def _coverage_map(name: str, group: Group, lane: Path, env: dict[str, str], log: Path) -> None:
    """Which tests run each line of the group's modules: a mutant then runs only those. A line
    run only while importing (module constants, signatures) maps to the whole set; a line run
    only in a server process a test started is not seen (its mutants survive untested)."""
    rc = OUT / name / "coveragerc"
    rc.write_text(f"[run]\ninclude = {', '.join(group.modules)}\ndata_file = {OUT / name / 'coverage.data'}\n")
    timings = OUT / name / "timings.xml"
    command = [*_pytest(group, list(group.tests), first_failure=False), f"--junitxml={timings}"]
    plugin_env = {**env, "PYTHONPATH": str(Path(__file__).resolve().parent)}
    _run([command[0], "-m", "coverage", "run", f"--rcfile={rc}", "-m", *command[2:], "-p", "mutation_contexts"], lane, plugin_env,
         log, check=False)  # fmt: skip
    # A test that fails before any mutation (a timing test under this load) would "kill" every
    # mutant it runs: it is left out of the group, and the report names it.
    broken = sorted(
        f"{case.get('classname', '').replace('.', '/')}.py::{case.get('name', '')}"
        for case in ElementTree.parse(timings).iter("testcase")  # noqa: S314 (pytest's own report)
        if case.find("failure") is not None or case.find("error") is not None
    )
    (OUT / name / "broken.json").write_text(json.dumps(broken))
    broken_functions = {b.split("[")[0] for b in broken}
    report = OUT / name / "coverage.json"
    _run([command[0], "-m", "coverage", "json", f"--rcfile={rc}", "--show-contexts", "-o", str(report)], lane, env, log)
    seconds: dict[str, float] = defaultdict(float)  # per test function, its parameters together
    for case in ElementTree.parse(timings).iter("testcase"):  # noqa: S314 (pytest's own report)
        module = case.get("classname", "").replace(".", "/") + ".py"
        seconds[f"{module}::{case.get('name', '').split('[')[0]}"] += float(case.get("time", 0))
    lines: dict[str, dict[str, list[str]]] = {}
    for path, data in json.loads(report.read_text())["files"].items():
        by_line = lines.setdefault(path, {})
        for line, contexts in data.get("contexts", {}).items():
            ids = {c.split("[")[0] for c in contexts if c} - broken_functions
            # fastest first: most mutants are killed by the first test that fails
            by_line[line] = sorted(ids, key=lambda n: seconds.get(n, 60.0)) if ids else []
    (OUT / name / "tests-by-line.json").write_text(json.dumps(lines))


# The test command of every mutant would otherwise start Python, pytest, its plugins and their
# imports afresh (~2.5 s of each mutant's run): a runner per lane imports the third-party part
# once and forks a child per mutant, which imports the project from the (mutated) tree.
WARM_MODULES = (
    "pytest", "_hypothesis_pytestplugin", "hypothesis", "hypothesis.strategies", "pytest_django.plugin",
    "pytest_asyncio.plugin", "pytest_timeout", "anyio.pytest_plugin", "django.test", "django.contrib.admin",
    "django.db.backends.postgresql.base", "channels.testing", "channels_redis.core", "celery", "psycopg",
    "psycopg_pool", "prometheus_client", "redis", "psutil", "hypothesis.extra.django",
)  # fmt: skip


def _socket_of(name: str) -> Path:
    return OUT / name / "runner.sock"


def serve(name: str) -> int:
    """The warm runner of one lane (started in the lane's tree): for each request, a list of
    pytest arguments, fork, run pytest in the child, answer its exit code. A client that goes
    away (cosmic-ray's timeout) takes its child's process group with it."""
    import importlib
    import selectors
    import signal
    import socket

    import pytest

    for module in WARM_MODULES:
        try:
            importlib.import_module(module)
        except Exception as exc:  # one that needs settings is left to the child
            print(f"runner: {module} not imported ahead: {exc}", file=sys.stderr)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path = _socket_of(name)
    path.unlink(missing_ok=True)
    listener.bind(str(path))
    listener.listen(1)
    while True:
        connection, _ = listener.accept()
        with connection:
            request = b""
            while not request.endswith(b"\n"):
                chunk = connection.recv(65536)
                if not chunk:
                    break
                request += chunk
            if not request.endswith(b"\n"):
                continue
            args = json.loads(request)
            child = os.fork()
            if child == 0:  # pragma: no cover (the child)
                listener.close()
                connection.close()
                os.setsid()
                devnull = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(devnull, fd)
                code = 3
                try:
                    sys.path.insert(0, os.getcwd())  # the lane's tree, as ``python -m pytest`` does
                    code = int(pytest.main(args))
                finally:
                    os._exit(code)
            watch = selectors.DefaultSelector()
            watch.register(connection, selectors.EVENT_READ)
            status = None
            while status is None:
                done, raw = os.waitpid(child, os.WNOHANG)
                if done:
                    status = os.waitstatus_to_exitcode(raw)
                elif watch.select(timeout=0.05):  # the client hung up: it was timed out
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(child, signal.SIGKILL)
                    os.waitpid(child, 0)
                    status = -1
            watch.close()
            with contextlib.suppress(OSError):
                connection.sendall(f"{status}\n".encode())


def _run_warm(name: str, args: list[str]) -> int | None:
    """The exit code of pytest run with ``args`` by the lane's warm runner; None without one."""
    import socket

    path = _socket_of(name)
    if not path.exists():
        return None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        try:
            client.connect(str(path))
        except OSError:
            return None
        client.sendall(json.dumps(args).encode() + b"\n")
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = client.recv(64)
            if not chunk:
                return None
            answer += chunk
    return int(answer)


def _statement_starts(source: str) -> dict[int, int]:
    """Each line of a statement that spans several (a compound one: of its header) mapped to
    the statement's first line, the one coverage records as run."""
    starts: dict[int, int] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.stmt) and node.end_lineno is not None:
            inner = [
                c.lineno for f in ("body", "orelse", "finalbody", "handlers") for c in getattr(node, f, None) or []
            ]
            for line in range(node.lineno, min([node.end_lineno + 1, *inner])):
                starts[line] = node.lineno
    return starts


def _test_timeout(name: str) -> int:
    """Seconds a test may take under a mutant: four times the slowest of the group's tests in
    the coverage run (at least 15), so a mutant that makes a test hang is killed in seconds,
    not after the suite's own limit."""
    timings = ElementTree.parse(OUT / name / "timings.xml").iter("testcase")  # noqa: S314 (pytest's own report)
    slowest = max((float(case.get("time", 0)) for case in timings), default=30.0)
    return max(15, math.ceil(4 * slowest))


def run_tests(name: str) -> int:
    """The test command cosmic-ray runs for one mutant, in the group's tree: the tests that run
    the mutated line, fastest first (all of the group's for a line run while importing); 0 when
    they pass or none runs it (the mutant survived)."""
    group = GROUPS[name]
    by_line = json.loads((OUT / name / "tests-by-line.json").read_text())
    chosen: list[str] = []
    for module in group.modules:
        source = (OUT / name / "pristine" / module).read_text()
        pristine, starts = source.splitlines(), _statement_starts(source)
        mutated = Path(module).read_text().splitlines()
        for tag, i1, i2, _, _ in difflib.SequenceMatcher(None, pristine, mutated, autojunk=False).get_opcodes():
            for line in range(i1 + 1, max(i1 + 1, i2) + 1) if tag != "equal" else ():
                line = starts.get(line, line)  # coverage counts a statement on its first line
                if str(line) not in by_line.get(module, {}):
                    continue  # no test runs this line
                chosen += [t for t in by_line[module][str(line)] or group.tests if t not in chosen]
    if not chosen:
        return 0  # nothing runs the mutated line: it survives
    broken = json.loads((OUT / name / "broken.json").read_text())
    deselected = [arg for test in broken for arg in ("--deselect", test)]
    command = [*_pytest(group, chosen), f"--timeout={_test_timeout(name)}", *deselected]  # the last --timeout counts
    warm = _run_warm(name, command[3:])
    if warm is not None:
        return warm
    return subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode


@contextlib.contextmanager
def _warm_runner(name: str, lane: Path, env: dict[str, str], log: Path) -> Iterator[None]:
    with log.open("ab") as out:
        runner = subprocess.Popen([str(VENV_BIN / "python"), str(Path(__file__).resolve()), "--serve", name], cwd=lane,
                                  env=env, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not _socket_of(name).exists() and runner.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        yield
    finally:
        runner.kill()
        runner.wait()
        _socket_of(name).unlink(missing_ok=True)


def _copy_tree(lane: Path) -> None:
    """The tracked files as they are in the work tree (changes included), without caches."""
    if lane.exists():
        shutil.rmtree(lane)
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    for raw in files.split(b"\0"):
        if not raw:
            continue
        source = ROOT / raw.decode()
        if source.is_file():
            target = lane / raw.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    for shared in ("node_modules",):
        if (ROOT / shared).exists():
            (lane / shared).symlink_to(ROOT / shared)


def _run(args: list[str], cwd: Path, env: dict[str, str], log: Path, *, check: bool = True) -> None:
    with log.open("ab") as out:
        out.write(f"$ {' '.join(args)}\n".encode())
        out.flush()
        subprocess.run(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, check=check)


@dataclass
class Score:
    name: str
    total: int
    killed: int
    survivors: list[dict[str, object]]
    seconds: float
    error: str = ""

    @property
    def percent(self) -> float:
        return 100.0 * self.killed / self.total if self.total else 100.0


def _survivors(session: Path) -> tuple[int, int, list[dict[str, object]]]:
    with sqlite3.connect(session) as db:
        rows = db.execute(
            "SELECT m.module_path, m.start_pos_row, m.operator_name, r.test_outcome, r.diff "
            "FROM mutation_specs m JOIN work_results r ON r.job_id = m.job_id "
            "WHERE r.worker_outcome != 'SKIPPED'"  # left out by the operator and pragma filters
        ).fetchall()
    survivors = [
        {"file": path, "line": line, "operator": operator, "diff": diff}
        for path, line, operator, outcome, diff in rows
        if outcome == "SURVIVED"
    ]
    return len(rows), len(rows) - len(survivors), survivors


def _code(path: Path) -> list[str]:
    """A module's lines without their mutation pragmas: adding one moves no mutant."""
    return [PRAGMA.sub("", line) for line in path.read_text().splitlines()]


def run_group(name: str, group: Group, *, survivors_only: bool = False) -> Score:
    """Mutate the group's modules one mutant at a time; with ``survivors_only``, run again only
    the mutants that survived the last run (after tests were added; the modules unchanged)."""
    started = time.monotonic()
    lane = OUT / name / "tree"
    config = OUT / name / "config.toml"
    session = OUT / name / "session.sqlite"
    log = OUT / name / "log.txt"
    if survivors_only:
        changed = [m for m in group.modules if _code(OUT / name / "pristine" / m) != _code(ROOT / m)]
        if not session.exists() or changed:
            return Score(name, 0, 0, [], 0.0, f"no earlier run of these modules as they are ({', '.join(changed)})")
    else:
        session.unlink(missing_ok=True)
        log.unlink(missing_ok=True)
    _copy_tree(lane)
    config.write_text(_config(name, group))
    import psycopg
    from _support import PG

    database = f"test_opsite_mutation_{name}"
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as admin:  # made afresh, then kept for the run
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
        "OPSITE_TEST_DATABASE": database,
        "PYTHONDONTWRITEBYTECODE": "1",  # a mutated module is never read back from a stale .pyc
    }
    env.pop("CI", None)  # a group's tests skip what they do not need instead of failing on it
    cr = str(VENV_BIN / "cosmic-ray")
    for module in group.modules:
        (OUT / name / "pristine" / module).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(lane / module, OUT / name / "pristine" / module)
    try:
        _coverage_map(name, group, lane, env, log)
        if survivors_only:
            with sqlite3.connect(session) as db:
                db.execute("DELETE FROM work_results WHERE test_outcome = 'SURVIVED'")
            _run([str(VENV_BIN / "cr-filter-pragma"), str(session)], lane, env, log)  # pragmas added since
        else:
            _run([cr, "init", str(config), str(session)], lane, env, log)
            _run([str(VENV_BIN / "cr-filter-operators"), str(session), str(config)], lane, env, log)
            _run([str(VENV_BIN / "cr-filter-pragma"), str(session)], lane, env, log)
            _run([cr, "baseline", str(config)], lane, env, log)
        with _warm_runner(name, lane, env, log):
            _run([cr, "exec", str(config), str(session)], lane, env, log)
    except subprocess.CalledProcessError as exc:
        return Score(name, 0, 0, [], time.monotonic() - started, f"{exc.cmd[0]} failed; see {log}")
    total, killed, survivors = _survivors(session)
    return Score(name, total, killed, survivors, time.monotonic() - started)


def _report(names: list[str]) -> int:
    print(f"{'group':<12} {'mutants':>8} {'run':>5} {'killed':>7} {'score':>7}  modules")
    for name in names:
        session = OUT / name / "session.sqlite"
        if not session.exists():
            print(f"{name:<12} {'not run':>8}")
            continue
        with sqlite3.connect(session) as db:
            (pending,) = db.execute(
                "SELECT count(*) FROM work_items WHERE job_id NOT IN (SELECT job_id FROM work_results)"
            ).fetchone()
        run, killed, survivors = _survivors(session)
        score = f"{100.0 * killed / run:.1f}%" if run else "-"
        print(f"{name:<12} {run + pending:>8} {run:>5} {killed:>7} {score:>7}  {', '.join(GROUPS[name].modules)}")
        for survivor in survivors:
            print(f"    survived: {survivor['file']}:{survivor['line']} {survivor['operator']}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("groups", nargs="*", help=f"some of: {', '.join(GROUPS)} (default: all)")
    parser.add_argument("--jobs", type=int, default=3, help="groups run side by side (default 3)")
    parser.add_argument("--list", action="store_true", help="print the groups and exit")
    parser.add_argument("--survivors", action="store_true", help="run again only what survived the last run")
    parser.add_argument("--report", action="store_true", help="print the scores of the last runs (even unfinished)")
    parser.add_argument("--run-tests", metavar="GROUP", help=argparse.SUPPRESS)  # cosmic-ray's test command
    parser.add_argument("--serve", metavar="GROUP", help=argparse.SUPPRESS)  # a lane's warm runner
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve)
    if args.run_tests:
        return run_tests(args.run_tests)
    if args.list:
        for name, group in GROUPS.items():
            print(f"{name}: {', '.join(group.modules)}\n    tests: {' '.join(group.tests)}")
        return 0
    if args.report:
        return _report(args.groups or list(GROUPS))
    unknown = [g for g in args.groups if g not in GROUPS]
    if unknown:
        print(f"mutation: unknown group {', '.join(unknown)}; choose from {', '.join(GROUPS)}", file=sys.stderr)
        return 2
    if not (VENV_BIN / "cosmic-ray").exists():
        print("mutation: cosmic-ray is not installed; run bin/test once (it installs the dev requirements)",
              file=sys.stderr)  # fmt: skip
        return 2
    chosen = args.groups or list(GROUPS)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        scores = list(pool.map(lambda n: run_group(n, GROUPS[n], survivors_only=args.survivors), chosen))
    print(f"\n{'group':<12} {'mutants':>8} {'killed':>7} {'score':>7} {'minutes':>8}")
    for s in scores:
        status = s.error or ("" if s.percent >= TARGET else f"below {TARGET:g} %")
        print(f"{s.name:<12} {s.total:>8} {s.killed:>7} {s.percent:>6.1f}% {s.seconds / 60:>8.1f}  {status}")
    print(f"all groups: {(time.monotonic() - started) / 60:.1f} minutes with {args.jobs} side by side")
    for s in scores:
        broken_file = OUT / s.name / "broken.json"
        for test in json.loads(broken_file.read_text()) if broken_file.exists() else []:
            print(f"left out of {s.name} (failed before any mutation): {test}")
    for s in scores:
        for survivor in s.survivors:
            print(f"\nsurvived in {s.name}: {survivor['file']}:{survivor['line']} {survivor['operator']}")
            print(str(survivor["diff"]).rstrip())
    return 0 if all(not s.error and s.percent >= TARGET for s in scores) else 1


if __name__ == "__main__":
    sys.exit(main())
