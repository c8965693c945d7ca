"""Issue 16: after a re-run, Salesforce holds what a first run with today's data would.

Each case writes a day to the emulator, then changes the store (messages deleted: fewer
parts, or a whole transcript gone) or the Task-copy setting, and re-runs the window. The
emulator's TalkLog__c, Task and LineWorks__c records must then equal those of a first run
of a fresh emulator and store on today's data and settings: stale parts and Tasks (still
holding deleted text) removed, nothing of other windows touched.

A dedicated 1:1 room carries a transcript near the TalkLog part limit: 14 messages of
10,000 characters give 2 TalkLog parts and 5 Task parts; 13 give 1 and 5; 12 give 1 and 4.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa

from talklog.pipeline import RunSummary
from talklog.settings import TalkLogSettings, TaskCopy
from talklog.store.models import (
    LineUser,
    LineWorksUser,
    Link,
    LinkPeriod,
    MemberKind,
    Message,
    Room,
    RoomMember,
    RoomType,
    TalkLogClaim,
    TargetType,
)
from talklog.windows import TalkWindow
from tests.integration.talklog_world import World, build_world, local
from tests.reliability.harness import CONFIG, State, compare, open_letters, state

pytestmark = pytest.mark.reliability

BIG_ROOM = "room-near-the-part-limit"
BIG_LINE_USER = "line-user-big-transcript"
BIG_MESSAGES = 14
BIG_TEXT = 10_000
FULL, NO_CONTENT, OFF = (TalkLogSettings(task_copy=copy) for copy in TaskCopy)
TASK_PARTS = {TaskCopy.FULL: 5, TaskCopy.NO_CONTENT: 1, TaskCopy.OFF: 0}  # of 14 big messages


# -- the world ----------------------------------------------------------------------------------


def _world(emulator: Any, url: str) -> World:
    """The harness's generated day plus the big 1:1 room, links synced."""
    emulator.reset()
    world = build_world(emulator, url, CONFIG, sync=False)
    _add_big_room(world)
    world.sync_links_cleanly()
    world.counter.by_kind.clear()
    return world


def _add_big_room(world: World) -> None:
    """A staff user and a new LINE customer (linked to external contact EC39) in a 1:1 room,
    with `BIG_MESSAGES` long messages at 10:00 local time."""
    target = next(
        r["Id"] for r in world.emulator.records("ExternalContact__c") if r["Name"] == "EC39"
    )
    since = local(CONFIG.day, -24)
    with world.sessions.begin() as session:
        staff = session.scalars(sa.select(LineWorksUser.id).order_by(LineWorksUser.id)).first()
        session.add(LineUser(id=BIG_LINE_USER, display_name="大口 顧客"))
        session.add(Room(id=BIG_ROOM, room_type=RoomType.ONE_TO_ONE.value, created_at=since))
        session.flush()
        for kind, lw, line in (
            (MemberKind.LW, staff, None),
            (MemberKind.LINE, None, BIG_LINE_USER),
        ):
            session.add(
                RoomMember(
                    room_id=BIG_ROOM, member_kind=kind.value, lw_user_id=lw, line_user_id=line,
                    joined_at=since,
                )
            )  # fmt: skip
        link = Link(
            link_key=f"{staff}:{BIG_LINE_USER}", lw_user_id=staff, line_user_id=BIG_LINE_USER,
            target_type=TargetType.EXTERNAL_CONTACT.value, target_id=target, nickname="大口",
            linked=True, linked_at=since, updated_at=since,
        )  # fmt: skip
        session.add(link)
        session.flush()
        session.add(LinkPeriod(link_id=link.id, started_at=since))
        for n in range(BIG_MESSAGES):
            session.add(
                Message(
                    message_key=f"big-{n:02d}", room_id=BIG_ROOM,
                    sent_at=local(CONFIG.day, 10) + dt.timedelta(minutes=n),
                    sender_kind=MemberKind.LW.value, sender_lw_user_id=staff,
                    text=f"{n:02d}" + "長" * (BIG_TEXT - 2),
                )
            )  # fmt: skip


def _run(world: World, settings: TalkLogSettings, run_id: str) -> RunSummary:
    summary = world.write(settings, run_id)
    assert summary.rejected == 0, summary.as_dict()
    return summary


# -- changes of the store -------------------------------------------------------------------------


def _delete_big_messages(count: int) -> Callable[[World], None]:
    def mutate(world: World) -> None:
        keys = [f"big-{n:02d}" for n in range(BIG_MESSAGES - count, BIG_MESSAGES)]
        _delete_messages(world, Message.message_key.in_(keys))

    return mutate


def _empty_big_room(world: World) -> None:
    _delete_messages(world, Message.room_id == BIG_ROOM)


def _empty_a_group_room(world: World) -> None:
    """Every message of the generated group room with the most messages in the window."""
    window = world.window()
    with world.sessions() as session:
        room = session.scalar(
            sa.select(Message.room_id)
            .join(Room, Room.id == Message.room_id)
            .where(Room.room_type == RoomType.GROUP.value, Message.sent_at >= window.start)
            .group_by(Message.room_id)
            .order_by(sa.func.count().desc(), Message.room_id)
            .limit(1)
        )
    _delete_messages(world, Message.room_id == room)


def _delete_messages(world: World, where: sa.ColumnElement[bool]) -> None:
    with world.sessions.begin() as session:
        deleted = session.execute(sa.delete(Message).where(where)).rowcount
    assert deleted > 0


def _unchanged(world: World) -> None:
    pass


def _forget_part_counts(world: World) -> None:
    """The claims as a store written before migration 0003 holds them: counts unknown."""
    with world.sessions.begin() as session:
        session.execute(sa.update(TalkLogClaim).values(talklog_parts=None, task_parts=None))


@dataclass(frozen=True)
class Case:
    name: str
    before: TalkLogSettings
    after: TalkLogSettings
    change: Callable[[World], None]
    written_before_0003: bool = False


CASES = [
    Case("one message deleted: 2 TalkLog parts -> 1", FULL, FULL, _delete_big_messages(1)),
    Case("two messages deleted: 5 Task parts -> 4", FULL, FULL, _delete_big_messages(2)),
    Case("every message of a transcript deleted", FULL, FULL, _empty_big_room),
    Case("every message of a group room deleted", FULL, FULL, _empty_a_group_room),
    Case("Task copy full -> no_content", FULL, NO_CONTENT, _unchanged),
    Case("Task copy full -> off", FULL, OFF, _unchanged),
    Case("Task copy off -> full", OFF, FULL, _unchanged),
    Case("no_content -> full, one message deleted", NO_CONTENT, FULL, _delete_big_messages(1)),
    Case("before 0003: one message deleted", FULL, FULL, _delete_big_messages(1), True),
    Case("before 0003: Task copy full -> off", FULL, OFF, _unchanged, True),
    Case("before 0003: every message deleted", FULL, NO_CONTENT, _empty_big_room, True),
]


def _first_run_state(emulator: Any, url: str, case: Case) -> State:
    """Salesforce after a first run of a fresh emulator and store on today's data."""
    world = _world(emulator, url)
    case.change(world)
    _run(world, case.after, "first run")
    return state(emulator)


def _big_parts(found: State) -> tuple[int, int]:
    """(TalkLog parts, Task parts) of the big room's transcript."""
    talklogs = [key for key in found["TalkLog__c"] if key.startswith(f"{BIG_ROOM}|")]
    tasks = [key for key in found["Task"] if key.startswith(f"log|{BIG_ROOM}|")]
    return len(talklogs), len(tasks)


def _rerun_state(emulator: Any, url: str, case: Case) -> tuple[State, RunSummary, State]:
    world = _world(emulator, url)
    _run(world, case.before, "first")
    before = state(emulator)
    assert _big_parts(before) == (2, TASK_PARTS[case.before.task_copy])
    if case.written_before_0003:
        _forget_part_counts(world)
    case.change(world)
    summary = _run(world, case.after, "re-run")
    assert open_letters(world) == 0
    return before, summary, state(emulator)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_a_rerun_leaves_what_a_first_run_would(case, emulator, sqlite_url, tmp_path):
    before, summary, rerun = _rerun_state(emulator, sqlite_url, case)
    first = _first_run_state(emulator, f"sqlite:///{tmp_path / 'fresh.db'}", case)
    _assert_same(rerun, first)
    removed = {obj: len(before[obj].keys() - first[obj].keys()) for obj in ("TalkLog__c", "Task")}
    assert summary.talklogs["deleted"] == removed["TalkLog__c"], summary.as_dict()
    assert summary.tasks["deleted"] == removed["Task"], summary.as_dict()


@pytest.mark.parametrize("case", [CASES[1], CASES[2], CASES[8]], ids=lambda case: case.name)
def test_a_rerun_on_postgresql_leaves_what_a_first_run_would(
    case, emulator, postgres_url, tmp_path
):
    _, _, rerun = _rerun_state(emulator, postgres_url, case)
    _assert_same(rerun, _first_run_state(emulator, f"sqlite:///{tmp_path / 'fresh.db'}", case))


def test_records_of_other_windows_stay(emulator, sqlite_url, tmp_path):
    """The day written by its four 6-hour windows; the 10:00 window's messages of the big room
    deleted and only the window 06:00-12:00 re-run: the other windows' records stay as they
    were, and the result equals a first run of all four windows on today's data."""
    quarters = _quarters()
    world = _world(emulator, sqlite_url)
    for window in quarters:
        world.run(window, "first")
    before = state(emulator)
    _empty_big_room(world)
    rerun = world.run(quarters[1], "re-run")
    assert rerun.rejected == 0 and rerun.talklogs["deleted"] == 2 and rerun.tasks["deleted"] == 5
    after = state(emulator)
    other = [w.key() for n, w in enumerate(quarters) if n != 1]
    for obj in ("TalkLog__c", "Task"):
        kept = {key: rows for key, rows in before[obj].items() if any(w in key for w in other)}
        assert kept and {key: after[obj][key] for key in kept} == kept
    fresh = _world(emulator, f"sqlite:///{tmp_path / 'fresh.db'}")
    _empty_big_room(fresh)
    for window in quarters:
        fresh.run(window, "first")
    _assert_same(after, state(emulator))


def _quarters() -> list[TalkWindow]:
    return [TalkWindow(local(CONFIG.day, 6 * n), local(CONFIG.day, 6 * n + 6)) for n in range(4)]


def _assert_same(rerun: State, first: State) -> None:
    difference = compare(rerun, first)
    assert difference.none, (difference, _diff_keys(rerun, first))
    assert rerun == first


def _diff_keys(rerun: State, first: State) -> dict[str, Any]:
    return {
        obj: {
            "extra": sorted(rerun[obj].keys() - first[obj].keys())[:5],
            "missing": sorted(first[obj].keys() - rerun[obj].keys())[:5],
            "differing": sorted(
                k for k in first[obj] if k in rerun[obj] and rerun[obj][k] != first[obj][k]
            )[:5],
        }
        for obj in first
    }
