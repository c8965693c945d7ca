"""The LINE WORKS emulator as a subprocess for these tests (stopped by pid), a small world.

``lineworks_emulator`` is the running server (shared by the module's tests), ``lw_emulator``
the same reset before a test, ``lineworks_conn`` points the Airflow connection
``lineworks_default`` at it through ``AIRFLOW_CONN_LINEWORKS_DEFAULT``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from talklog_dev.lineworks_emulator.process import LineWorksEmulatorHandle, run_lineworks_emulator

WORLD = ("--messages", "120", "--staff", "5", "--customers", "9", "--rooms", "6", "--days", "2")


@pytest.fixture(scope="session")
def lineworks_emulator(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LineWorksEmulatorHandle]:
    with run_lineworks_emulator(tmp_path_factory.mktemp("lw-emulator"), *WORLD) as handle:
        yield handle


@pytest.fixture
def lw_emulator(lineworks_emulator: LineWorksEmulatorHandle) -> LineWorksEmulatorHandle:
    lineworks_emulator.reset()
    return lineworks_emulator


@pytest.fixture
def lineworks_conn(
    lw_emulator: LineWorksEmulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> LineWorksEmulatorHandle:
    for name, value in lw_emulator.airflow_conn_env().items():
        monkeypatch.setenv(name, value)
    return lw_emulator
