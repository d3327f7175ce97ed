"""Loaded into the mutation routine's coverage run (``-p mutation_contexts``): whatever runs
during a test, in any task or thread, is that test's; what runs outside one (imports,
collection) is nobody's. The map of tests by line that it yields picks each mutant's tests."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import coverage
import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: Any, nextitem: Any) -> Generator[None, object, object]:
    current = coverage.Coverage.current()
    if current is not None:
        current.switch_context(item.nodeid)
    try:
        return (yield)
    finally:
        if current is not None:
            current.switch_context("")
