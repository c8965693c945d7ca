"""Windows read by the reader process (`talklog.reader`: rows marshalled on SQLite, pickled
with PostgreSQL's datetimes; lines rendered by the reader) on both stores: each message
reaches each record once, pairs other windows own are left to them, the transcripts equal
those of in-process reads, and a claim that fails fails the run with nothing claimed and no
reader process left."""

from __future__ import annotations

import psutil
import pytest

from talklog import ledger as store_ledger
from talklog import pipeline, reader

from .talklog_world import World, build_world, hourly_windows, ledger, snapshot
from .test_exactly_once import CONFIG, DAILY, _assert_each_message_once_everywhere, _run_all


@pytest.fixture
def world(sf_emulator, store_url) -> World:
    return build_world(sf_emulator, store_url, CONFIG)


@pytest.mark.parametrize("render_when_waiting", [0, 10**6], ids=["reader renders", "here"])
def test_daily_then_hourly_read_by_the_reader_deliver_each_message_once(
    world, monkeypatch, render_when_waiting
):
    monkeypatch.setattr(reader, "RENDER_WHEN_WAITING", render_when_waiting)
    _run_all(world, [DAILY], "daily", reader_process_min_messages=0)
    daily = {(d.message_id, d.customer_key): d.talklog_key for d in ledger(world)}
    written = snapshot(world.emulator)
    _run_all(world, [DAILY], "in-process", reader_process_min_messages=None)
    assert snapshot(world.emulator) == written  # the reader's rendering is this process's
    _run_all(world, hourly_windows(), "hourly", reader_process_min_messages=0)
    _assert_each_message_once_everywhere(world)
    after = {(d.message_id, d.customer_key): d.talklog_key for d in ledger(world)}
    assert {pair: after[pair] for pair in daily} == daily  # the daily window keeps its pairs


def test_a_failing_claim_fails_the_run_with_nothing_claimed_and_no_reader_left(world, monkeypatch):
    calls = []
    claim = store_ledger.claim_rooms
    monkeypatch.setattr(pipeline, "CLAIM_BATCH_LINES", 1)  # a claim per room: fail midway

    def claim_then_fail(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("the store went away")
        return claim(*args, **kwargs)

    monkeypatch.setattr(store_ledger, "claim_rooms", claim_then_fail)
    before = {child.pid for child in psutil.Process().children()}
    with pytest.raises(RuntimeError, match="the store went away"):
        world.run(DAILY, "failing", reader_process_min_messages=0)
    assert ledger(world) == []  # the window's transaction was rolled back
    assert {child.pid for child in psutil.Process().children()} <= before  # reader stopped
    monkeypatch.setattr(store_ledger, "claim_rooms", claim)
    _run_all(world, [DAILY], "again", reader_process_min_messages=0)
    assert ledger(world)
