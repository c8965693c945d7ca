"""A window read by the reader process has its pairs claimed by a worker thread
(`pipeline._claimed`) while the main thread drafts the room before: on both stores each
message still reaches each record once, pairs other windows own are left to them, and a
claim that fails in the worker fails the run with nothing claimed and no process left."""

from __future__ import annotations

import threading

import psutil
import pytest

from talklog import ledger as store_ledger
from talklog import pipeline

from .talklog_world import World, build_world, hourly_windows, ledger
from .test_exactly_once import CONFIG, DAILY, _assert_each_message_once_everywhere, _run_all


@pytest.fixture
def world(sf_emulator, store_url) -> World:
    return build_world(sf_emulator, store_url, CONFIG)


def test_daily_then_hourly_through_the_worker_deliver_each_message_once(world, monkeypatch):
    threads = set()
    claim = store_ledger.claim

    def claim_seen(*args, **kwargs):
        threads.add(threading.current_thread().name)
        return claim(*args, **kwargs)

    monkeypatch.setattr(store_ledger, "claim", claim_seen)
    _run_all(world, [DAILY], "daily", reader_process_min_messages=0)
    daily = {(d.message_id, d.customer_key): d.talklog_key for d in ledger(world)}
    _run_all(world, hourly_windows(), "hourly", reader_process_min_messages=0)
    _assert_each_message_once_everywhere(world)
    after = {(d.message_id, d.customer_key): d.talklog_key for d in ledger(world)}
    assert {pair: after[pair] for pair in daily} == daily  # the daily window keeps its pairs
    assert threads and all(name.startswith("talklog-claims") for name in threads)


def test_a_claim_failing_in_the_worker_fails_the_run_and_claims_nothing(world, monkeypatch):
    calls = []
    claim = store_ledger.claim

    def claim_then_fail(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("the store went away")
        return claim(*args, **kwargs)

    monkeypatch.setattr(store_ledger, "claim", claim_then_fail)
    before = {child.pid for child in psutil.Process().children()}
    with pytest.raises(RuntimeError, match="the store went away"):
        world.run(DAILY, "failing", reader_process_min_messages=0)
    assert 3 <= len(calls) <= 4  # the next room may have been handed over already
    assert ledger(world) == []  # the window's transaction was rolled back after the worker
    assert {child.pid for child in psutil.Process().children()} <= before  # reader stopped
    monkeypatch.setattr(store_ledger, "claim", claim)
    _run_all(world, [DAILY], "again", reader_process_min_messages=0)
    assert ledger(world)


def test_the_in_process_read_claims_in_this_thread(world, monkeypatch):
    backgrounds = []
    claimed = pipeline._claimed

    def seen(*args, background: bool, **kwargs):
        backgrounds.append(background)
        return claimed(*args, background=background, **kwargs)

    monkeypatch.setattr(pipeline, "_claimed", seen)
    _run_all(world, [DAILY, *hourly_windows()], "in-process", reader_process_min_messages=None)
    assert backgrounds == [False] * 25
    _assert_each_message_once_everywhere(world)
