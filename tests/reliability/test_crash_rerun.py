"""Crash and rerun (issue 9): the worker is SIGKILLed at each boundary, then the same window
(or link sync) runs again: no duplicates, nothing missing, the ledger complete.

The worker is a real process (`tests/reliability/crash_runner.py`) that freezes at the
boundary, so the state it leaves is checked before it is killed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from talklog.ledger import entries
from talklog.links import WATERMARK
from talklog.store.models import TalkLogClaim, Watermark
from tests.integration.talklog_world import World, ledger
from tests.reliability import report
from tests.reliability.harness import (
    JOBS,
    Job,
    State,
    compare,
    job_world,
    message_entries,
    open_letters,
    state,
)

pytestmark = pytest.mark.reliability
REPO = Path(__file__).resolve().parents[2]
TALKLOGS, LINK_SYNC = JOBS[0], JOBS[1]
READY_TIMEOUT_S = 60.0


def _run_job(world: World, job: Job) -> None:
    if job is LINK_SYNC:
        assert world.sync_links().rejected == 0
    else:
        assert world.run(world.window(), "rerun").rejected == 0


@pytest.fixture(scope="module")
def baselines(emulator, tmp_path_factory) -> dict[str, State]:
    found = {}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in emulator.airflow_conn_env().items():
            patch.setenv(name, value)
        for job in (TALKLOGS, LINK_SYNC):
            url = f"sqlite:///{tmp_path_factory.mktemp('crash-baseline')}/store.db"
            world = job_world(emulator, url, job)
            _run_job(world, job)
            found[job.name] = state(emulator)
    return found


def _crash_at(world: World, job: Job, boundary: str, workdir: Path) -> None:
    """Start the worker, wait until it froze at `boundary`, SIGKILL it."""
    ready = workdir / "ready"
    spec = {
        "emulator": {k: v for k, v in asdict(world.emulator).items() if not k.startswith("_")},
        "url": world.url,
        "job": job.name,
        "window": [moment.isoformat() for moment in (world.window().start, world.window().end)],
        "boundary": boundary,
        "ready_file": str(ready),
    }
    (workdir / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
    log = (workdir / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.crash_runner", str(workdir / "spec.json")],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_ready(worker, ready, workdir / "worker.log")
        assert ready.read_text(encoding="utf-8") == boundary
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        log.close()
    assert worker.returncode == -signal.SIGKILL


def _wait_ready(worker: subprocess.Popen, ready: Path, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not ready.exists():
        if worker.poll() is not None:
            raise AssertionError(f"worker ended early:\n{log.read_text(errors='replace')}")
        if time.monotonic() > deadline:
            raise AssertionError("worker never reached its boundary")
        time.sleep(0.05)
    time.sleep(0.05)  # the ready file is written whole before the worker sleeps


def _count(world: World, sobject: str, kind: str | None = None) -> int:
    rows = world.emulator.records(sobject)
    return sum(1 for row in rows if kind is None or row.get("LineWorksKind__c") == kind)


def _talklog_at(boundary: str, baseline: State) -> Callable[[World], None]:
    """What Salesforce and the ledger hold when the worker froze at `boundary`."""
    talklogs = len(baseline["TalkLog__c"])
    tasks = len(baseline["Task"]) - _exchange(baseline)
    # A window's TalkLog and Task jobs are submitted together before the first look
    # (`BulkClient.ingest_many`), so when the first job reports done both objects are loaded.
    loaded = {
        "after_extract": (0, 0),
        "mid_upload": (0, 0),
        "between_objects": (talklogs, tasks),
        "after_bulk_before_ledger": (talklogs, tasks),
    }[boundary]

    def check(world: World) -> None:
        deliveries = ledger(world)
        assert deliveries and all(d.delivered_at is None for d in deliveries)
        assert (_count(world, "TalkLog__c"), _count(world, "Task", "TalkLog")) == loaded

    return check


def _exchange(baseline: State) -> int:
    return sum(1 for key in baseline["Task"] if key.startswith("exchange|"))


def _link_sync_at(boundary: str, baseline: State) -> Callable[[World], None]:
    tasks = _exchange(baseline) if boundary == "after_bulk_before_ledger" else 0

    def check(world: World) -> None:
        assert _count(world, "LineWorks__c") == len(baseline["LineWorks__c"])
        assert _count(world, "Task", "Exchange") == tasks
        with world.sessions() as session:
            assert session.get(Watermark, WATERMARK) is None  # not advanced

    return check


LABELS = {
    "after_extract": "after extract (claims committed, nothing loaded)",
    "mid_upload": "mid-upload (TalkLog rows uploaded, job open)",
    "between_objects": "after the first job reported done (link sync: first object loaded;"
    " talk-log windows: TalkLog and Task jobs run side by side)",
    "after_bulk_before_ledger": "after the Bulk jobs, before dead letters/ledger/watermark",
}
CASES = [
    *((TALKLOGS, b, _talklog_at) for b in ("after_extract", "mid_upload")),
    *((TALKLOGS, b, _talklog_at) for b in ("between_objects", "after_bulk_before_ledger")),
    *((LINK_SYNC, b, _link_sync_at) for b in ("between_objects", "after_bulk_before_ledger")),
]


@pytest.mark.parametrize(
    ("job", "boundary", "expect"), CASES, ids=[f"{c[0].name}-{c[1]}" for c in CASES]
)
def test_sigkill_at_boundary_then_rerun_converges(
    job: Job,
    boundary: str,
    expect: Callable[[str, State], Callable[[World], None]],
    baselines: dict[str, State],
    salesforce_conn_env: Any,
    sqlite_url: str,
    tmp_path: Path,
):
    world = job_world(salesforce_conn_env, sqlite_url, job)
    _crash_at(world, job, boundary, tmp_path)
    expect(boundary, baselines[job.name])(world)

    _run_job(world, job)
    difference = compare(state(world.emulator), baselines[job.name])
    duplicates, missing = difference.duplicates, difference.missing
    if job is TALKLOGS:
        extra, absent = message_entries(world)
        duplicates, missing = duplicates + extra, missing + absent
        assert all(d.delivered_at is not None for d in ledger(world))
    letters = open_letters(world)
    converged = difference.none and not duplicates and not missing and not letters
    outcome = "converged on the re-run" if converged else f"DIFFERS {difference}"
    report.add(
        report.Row(
            "crash and rerun",
            f"worker SIGKILLed {LABELS[boundary]}",
            job.name,
            2,
            duplicates,
            missing,
            f"- -> {letters}",
            outcome,
        )
    )
    assert converged, (difference, duplicates, missing, letters)
    _assert_no_leftover_ledger(world)


def _assert_no_leftover_ledger(world: World) -> None:
    with world.sessions() as session:
        undelivered = entries(session, TalkLogClaim.delivered_at.is_(None))
    assert undelivered == []
