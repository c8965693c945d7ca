"""Print the reliability table at the end of the session; write docs/reliability.md."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import airflow_db, airflow_metadata_db
from tests.reliability import report

__all__ = ["airflow_db", "airflow_metadata_db"]  # whole DAG runs (test_secrets)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not report.ROWS:
        return
    terminalreporter.section("reliability")
    terminalreporter.write_line(report.render())
    if report.matrix_complete() and report.write_doc():
        terminalreporter.write_line(f"written: {report.DOC}")
