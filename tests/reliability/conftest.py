"""Print the reliability table at the end of the session; write docs/reliability.md."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import airflow_db, airflow_metadata_db
from tests.reliability import report as table

__all__ = ["airflow_db", "airflow_metadata_db"]  # whole DAG runs (test_secrets)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Count each reliability case once: its call, or the setup that skipped or failed it."""
    if report.when == "call" or (report.when == "setup" and not report.passed):
        module = report.nodeid.split("::")[0].rsplit("/", 1)[-1].removesuffix(".py")
        table.count_case(module, _covers(report.nodeid), report.outcome)


def _covers(nodeid: str) -> str:
    """The first line of the test module's docstring."""
    import importlib

    name = nodeid.split("::")[0].removesuffix(".py").replace("/", ".")
    doc = (importlib.import_module(name).__doc__ or "").strip()
    return doc.splitlines()[0].rstrip(":") if doc else ""


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not (table.ROWS or table.CLASSES):
        return
    terminalreporter.section("reliability")
    terminalreporter.write_line(table.render())
    if table.matrix_complete() and table.write_doc():
        terminalreporter.write_line(f"written: {table.DOC}")
