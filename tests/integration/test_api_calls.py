"""Spec section 8: the API calls of a talk-log run do not grow with the number of records.

A day of 100 messages and a day of 100,000 (the same rooms and customers, so ~5x the rows
and ~1,000x the transcript text) cost the same Bulk API calls: one job per object (create,
upload, close), the jobs of both objects watched together by job-list calls, one job-info call
per job for its counts and no result download (nothing failed, and successful results are
never read). That holds when jobs take a real org's time too (the emulator's `--bulk-pace`,
scaled down 100 times, the client's clock with it). The SOQL queries that place the linked
customers and find the staff's active users, and the one describe of Account (does the org
have Person Accounts?), are counted apart.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest

from talklog.pipeline import RunSummary
from talklog_dev.emulator.timescale import ScaledTime
from talklog_dev.synth import GeneratorConfig

from .talklog_world import DAY, build_world, direct_clients

CONFIG = GeneratorConfig(
    seed=3,
    day=DAY,
    n_staff=8,
    n_customers=36,
    n_rooms=30,
    group_share=0.4,
    long_message_share=0.0005,
)
BULK_CALLS_PER_JOB = 4  # create, upload, upload complete, its info (counts) at the end
JOBS = "/services/data/v{version}/jobs/ingest"
SCALE = 100.0  # emulated seconds per wall second of paced jobs


@dataclass
class Measured:
    summary: RunSummary
    calls: Counter[str]  # by method and API area, as the run's own counter saw them
    endpoints: dict[str, int]  # as the emulator counted them
    downloads: list[str]  # result CSVs the run fetched (successfulResults, failedResults, ...)
    seconds: float

    @property
    def bulk(self) -> int:
        return sum(n for kind, n in self.calls.items() if kind.endswith(" jobs"))

    @property
    def soql(self) -> int:
        return self.calls["GET query"]

    @property
    def describes(self) -> int:
        return self.calls["GET sobjects"]


def _measure_a_day(emulator: Any, url: str, messages: int, pace: str = "instant") -> Measured:
    emulator.reset()
    clock = ScaledTime(SCALE)
    world = build_world(
        emulator,
        url,
        CONFIG.replace(messages=messages),
        lambda: direct_clients(emulator, poll_interval=0.5, clock=clock),
    )
    emulator.set_pace(pace, time_scale=SCALE)
    emulator.reset(records=False, faults=False, counters=True)
    urls: list[str] = []
    world.clients.http_session.hooks["response"].append(lambda r, *_, **__: urls.append(r.url))
    started = time.perf_counter()
    summary = world.run(world.window())
    seconds = time.perf_counter() - started
    assert summary.messages == messages and summary.rejected == 0, summary.as_dict()
    assert summary.talklogs["written"] == summary.talklogs["sent"] > 0
    assert summary.tasks["written"] == summary.tasks["sent"] > 0
    assert len(emulator.records("TalkLog__c")) == summary.talklogs["sent"]
    talklog_tasks = [t for t in emulator.records("Task") if t.get("LineWorksKind__c") == "TalkLog"]
    assert len(talklog_tasks) == summary.tasks["sent"]
    endpoints = emulator.stats()["api_calls"]
    downloads = [url.rsplit("/", 1)[1] for url in urls if url.endswith(("Results", "records"))]
    return Measured(summary, Counter(world.counter.by_kind), endpoints, downloads, seconds)


def test_api_calls_are_the_same_for_100_and_100_000_messages(sf_emulator, tmp_path):
    small = _measure_a_day(sf_emulator, f"sqlite:///{tmp_path / 'small.db'}", 100)
    large = _measure_a_day(sf_emulator, f"sqlite:///{tmp_path / 'large.db'}", 100_000)
    print(
        f"\n100 messages: {small.summary.talklogs['sent']} TalkLogs + {small.summary.tasks['sent']}"
        f" Tasks, {small.bulk} Bulk + {small.soql} SOQL calls, {small.seconds:.1f}s"
        f"\n100,000 messages: {large.summary.talklogs['sent']} TalkLogs"
        f" + {large.summary.tasks['sent']} Tasks, {large.bulk} Bulk + {large.soql} SOQL calls,"
        f" {large.seconds:.1f}s"
    )
    assert large.summary.tasks["sent"] > 4 * small.summary.tasks["sent"]
    # two jobs, one job-list call (the instant org has them done at the first look)
    assert large.bulk == small.bulk == 2 * BULK_CALLS_PER_JOB + 1 <= 12
    assert large.endpoints[f"GET {JOBS}"] == small.endpoints[f"GET {JOBS}"] == 1
    # one query per kind of linked record, one for the staff's active users
    assert large.soql <= 5 and small.soql <= 5
    assert large.describes == small.describes == 1  # Person Accounts: asked once per run
    assert large.summary.api_calls == large.bulk + large.soql + large.describes
    for measured in (small, large):
        assert sum(measured.endpoints.values()) == sum(measured.calls.values())
        assert measured.downloads == [], measured.downloads


@pytest.mark.parametrize(("pace", "budget"), [("30s", 12), ("120s", 13)])
def test_api_calls_at_a_real_orgs_pace(sf_emulator, tmp_path, pace, budget):
    """Jobs of ~30 s (a 1k window's at the 30s pace) or ~60 s: the same calls at 100 and
    10,000 messages, by endpoint as the emulator counted them."""
    small = _measure_a_day(sf_emulator, f"sqlite:///{tmp_path / 'small.db'}", 100, pace)
    large = _measure_a_day(sf_emulator, f"sqlite:///{tmp_path / 'large.db'}", 10_000, pace)
    for measured in (small, large):
        calls = {name: n for name, n in measured.endpoints.items() if JOBS in name}
        assert calls[f"POST {JOBS}"] == calls[f"PUT {JOBS}/{{job_id}}/batches"] == 2, calls
        assert calls[f"PATCH {JOBS}/{{job_id}}"] == calls[f"GET {JOBS}/{{job_id}}"] == 2, calls
        assert 2 <= calls[f"GET {JOBS}"] <= budget - 8, calls  # the rounds of job-list calls
        assert measured.bulk == sum(calls.values()) <= budget
        assert measured.downloads == [], measured.downloads
    assert large.bulk == small.bulk
