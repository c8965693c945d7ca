"""Issue 20: a window's TalkLog and Task loads cost few API calls when jobs take a real org's time.

Before, the Task load began only after the TalkLog jobs had finished, and each job was polled
on its own with a backoff that restarted for it (0.5 s, then 1.5 times longer up to 10 s): at
30-120 s a job, a window cost about 16-24 calls for one job per object, far more for several.
Now every job of both objects is submitted before the first look, all open jobs are watched
with one job-list call per round (timed from the processing time Salesforce is expected to
take, 1.5 times later while late), and each job's outcome is read once at the end. Jobs are
paced by the emulator (`--bulk-pace`) at 100 emulated seconds per wall second; the client's
clock and sleep run at the same scale, so the calls are those a real org would count.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from talklog.salesforce.bulk import ExpectedPace
from talklog_dev.emulator.timescale import ScaledTime
from talklog_dev.synth import GeneratorConfig
from tests.integration.talklog_world import DAY, build_world, direct_clients

pytestmark = pytest.mark.reliability

SCALE = 100.0
CONFIG = GeneratorConfig(seed=5, day=DAY, n_staff=6, n_customers=24, n_rooms=20, messages=1_000)
JOB = "/services/data/v{version}/jobs/ingest"
SUBMIT = (f"POST {JOB}", f"PUT {JOB}/{{job_id}}/batches", f"PATCH {JOB}/{{job_id}}")
LIST, INFO = f"GET {JOB}", f"GET {JOB}/{{job_id}}"

# (pace, upload size limit: None = one job per object, else bytes per job, jobs, call budget)
CASES = [
    ("instant", None, 2, 9),  # 6 to submit, one look, 2 outcomes
    ("30s", None, 2, 12),  # issue 20: at most 12 calls at 1k messages with jobs of 30 s
    ("120s", None, 2, 13),  # no target: a 1k window's job takes ~61 s here, one more look
    ("30s", 700_000, 4, 24),  # two jobs per object, as at 1M (223 MiB of CSV: 4 jobs)
    ("120s", 700_000, 4, 24),  # issue 20: at most 24 calls at 1M with jobs of 120 s
]
EXPECTATIONS = {"default": ExpectedPace(), "pessimistic": ExpectedPace(queue_s=60.0)}


def _bulk_calls(emulator: Any) -> Counter[str]:
    calls = emulator.stats()["api_calls"]
    return Counter({name: n for name, n in calls.items() if "/jobs/ingest" in name})


@pytest.mark.parametrize("expectation", sorted(EXPECTATIONS))
@pytest.mark.parametrize(("pace", "max_bytes", "jobs", "budget"), CASES)
def test_a_window_costs_few_calls_at_a_real_orgs_pace(
    sf_emulator, tmp_path, pace, max_bytes, jobs, budget, expectation
):
    clock = ScaledTime(SCALE)
    options: dict[str, Any] = {"expected_pace": EXPECTATIONS[expectation]}
    if max_bytes:
        options["max_upload_bytes"] = max_bytes
    world = build_world(
        sf_emulator,
        f"sqlite:///{tmp_path / 'store.db'}",
        CONFIG,
        lambda: direct_clients(sf_emulator, poll_interval=0.5, clock=clock, **options),
    )
    sf_emulator.set_pace(pace, time_scale=SCALE)
    sf_emulator.reset(records=False, faults=False, counters=True)
    summary = world.run(world.window())
    assert summary.rejected == 0 and summary.talklogs["written"] == summary.talklogs["sent"] > 0
    assert summary.tasks["written"] == summary.tasks["sent"] > 0
    calls = _bulk_calls(sf_emulator)
    assert calls[SUBMIT[0]] == jobs, calls
    assert sum(calls.values()) <= budget, calls
    assert calls[INFO] <= jobs, calls  # one outcome per job (or its own look)
    assert not any(name.endswith(("Results", "records")) for name in calls), calls


@pytest.mark.parametrize("pace", ["30s", "120s"])
def test_every_job_is_submitted_before_the_first_look(sf_emulator, tmp_path, pace):
    """The Task jobs do not wait for the TalkLog jobs: all are created, uploaded and closed
    before any job is looked at."""
    clock = ScaledTime(SCALE)
    order: list[str] = []
    world = build_world(
        sf_emulator,
        f"sqlite:///{tmp_path / 'store.db'}",
        CONFIG,
        lambda: direct_clients(sf_emulator, poll_interval=0.5, clock=clock),
    )
    sf_emulator.set_pace(pace, time_scale=SCALE)

    def note(response: Any, *args: Any, **kwargs: Any) -> None:
        request = response.request
        if "/jobs/ingest" in request.url:
            order.append("look" if request.method == "GET" else request.method)

    world.clients.http_session.hooks["response"].append(note)
    world.run(world.window())
    first_look = order.index("look")
    assert order[:first_look] == ["POST", "PUT", "PATCH"] * 2, order
    assert "POST" not in order[first_look:], order
