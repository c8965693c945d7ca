"""Spec section 8: re-runs converge, and each message reaches each record once across schedules.

A generated day of realistic talk (1:1 and group rooms, churn, links made and unlinked during
the day, two leads converted) is linked to records in the emulator and written by hourly,
6-hourly and daily windows in several orders. Salesforce's transcripts are parsed back into
message entries and compared with an independent reading of the store.
"""

from __future__ import annotations

import pytest

from talklog.windows import TalkWindow
from talklog_dev.synth import GeneratorConfig

from .talklog_world import (
    DAY,
    World,
    build_world,
    delivered_lines,
    expected,
    hourly_windows,
    ledger,
    local,
    snapshot,
)

CONFIG = GeneratorConfig(
    seed=20260109,
    day=DAY,
    n_staff=8,
    n_customers=36,
    n_rooms=30,
    group_share=0.4,
    messages=1_500,
    long_message_share=0.004,
)
# Spec section 4 windows (Asia/Tokyo) that overlap the hourly windows of DAY.
DAILY = TalkWindow(local(DAY, 1), local(DAY, 25))  # run Jan 11 01:00: Jan 9 01:00 - Jan 10 00:59
SIX_HOURLY = [
    TalkWindow(local(DAY, -5), local(DAY, 1)),  # run Jan 10 01:00: Jan 8 19:00 - Jan 9 00:59
    TalkWindow(local(DAY, 7), local(DAY, 13)),  # run Jan 10 13:00: Jan 9 07:00 - 12:59
]


@pytest.fixture
def world(sf_emulator, sqlite_url) -> World:
    return build_world(sf_emulator, sqlite_url, CONFIG)


def _run_all(world: World, windows: list[TalkWindow], run_id: str, **options) -> None:
    for window in windows:
        summary = world.run(window, run_id, **options)
        assert summary.rejected == 0, summary.as_dict()
        assert not summary.unresolved_targets, summary.as_dict()


def _assert_each_message_once_everywhere(world: World) -> None:
    """Salesforce transcripts hold every message of every linked record exactly once, and
    the ledger has exactly the expected (message, customer) pairs, all delivered."""
    wanted = expected(world)
    assert sum(map(len, wanted.lines.values())) > 500, "the day must give the check something"
    assert all(n == 1 for lines in wanted.lines.values() for n in lines.values())
    assert delivered_lines(world.emulator) == wanted.lines
    deliveries = ledger(world)
    assert {(d.message_id, d.customer_key) for d in deliveries} == wanted.pairs
    assert all(d.delivered_at is not None for d in deliveries)
    assert all(d.target_record_id == world.homes[d.customer_key] for d in deliveries)


def test_the_same_window_twice_leaves_the_same_records(world):
    _run_all(world, [world.window()], "first")
    first = snapshot(world.emulator)
    assert len(first["TalkLog__c"]) > 20 and any("|2" in key for key in first["TalkLog__c"])
    second = world.run(world.window(), "second")
    assert second.talklogs["written"] == len(first["TalkLog__c"]) and second.rejected == 0
    assert second.talklogs["deleted"] == second.tasks["deleted"] == 0  # nothing is stale
    assert second.talklogs["resent"] == second.tasks["resent"] == 0
    assert snapshot(world.emulator) == first  # every row updated in place, none created
    _assert_each_message_once_everywhere(world)


def test_hourly_then_overlapping_daily_and_six_hourly_change_nothing(world):
    _run_all(world, hourly_windows(), "hourly")
    _assert_each_message_once_everywhere(world)
    hourly_state = {obj: world.emulator.records(obj) for obj in ("TalkLog__c", "Task")}
    hourly_ledger = {(d.message_id, d.customer_key): d.talklog_key for d in ledger(world)}

    for window in [DAILY, *SIX_HOURLY]:
        summary = world.run(window, "overlap")
        assert summary.transcripts == 0 and summary.pairs_owned_by_other_windows > 0
        assert summary.talklogs["sent"] == summary.tasks["sent"] == 0
    assert {obj: world.emulator.records(obj) for obj in hourly_state} == hourly_state
    assert {(d.message_id, d.customer_key): d.talklog_key for d in ledger(world)} == hourly_ledger
    _assert_each_message_once_everywhere(world)


def test_daily_first_then_hourly_delivers_the_rest_once(world):
    _run_all(world, [DAILY], "daily")
    daily = snapshot(world.emulator)["TalkLog__c"]
    _run_all(world, hourly_windows(), "hourly")
    state = snapshot(world.emulator)["TalkLog__c"]
    assert {key: state[key] for key in daily} == daily  # the daily transcripts stay whole
    hourly_keys = {key.split("|")[1] for key in set(state) - set(daily)}
    assert hourly_keys == {hourly_windows()[0].key()}  # only 00:00-00:59 was left to write
    _assert_each_message_once_everywhere(world)


def test_windows_read_by_the_reader_process_deliver_each_message_once(world):
    """Big windows read their messages in a second process (`talklog.reader`); forced here."""
    _run_all(world, [DAILY, *hourly_windows()], "reader", reader_process_min_messages=0)
    _assert_each_message_once_everywhere(world)
