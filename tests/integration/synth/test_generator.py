"""The synthetic generator writes a realistic, deterministic store that keeps its invariants."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
import sqlalchemy as sa

from talklog.store import make_engine
from talklog.store.migrate import upgrade
from talklog.store.models import (
    LineUser,
    LineWorksUser,
    Link,
    LinkPeriod,
    Message,
    MessageType,
    Room,
    RoomMember,
    TargetType,
)
from talklog_dev.synth import GenerationReport, GeneratorConfig, generate, sfids

TABLES = (LineWorksUser, LineUser, Room, RoomMember, Link, LinkPeriod, Message)
CONFIG = GeneratorConfig(
    seed=42,
    day=dt.date(2025, 1, 9),
    days=3,
    n_staff=10,
    n_customers=50,
    n_rooms=40,
    group_share=0.4,
    member_churn=0.5,
    messages=6_000,
    quiet_day_share=0.34,
    long_message_share=0.001,
    chunk_size=1_000,
)


def _rows(url: str) -> dict[str, list[tuple]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {
                t.__tablename__: conn.execute(
                    sa.select(t).order_by(*t.__table__.primary_key.columns)
                ).all()
                for t in TABLES
            }
    finally:
        engine.dispose()


def _fresh(tmp_path_factory, name: str) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('synth') / name}"
    upgrade(url)
    return url


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[str, GenerationReport]:
    url = _fresh(tmp_path_factory, "store.db")
    return url, generate(url, CONFIG)


def _scalar(url: str, query: sa.Select):
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(query).scalar_one()
    finally:
        engine.dispose()


def _senders_outside_membership() -> sa.Select:
    member_then = sa.exists().where(
        RoomMember.room_id == Message.room_id,
        RoomMember.member_kind == Message.sender_kind,
        sa.or_(
            RoomMember.lw_user_id == Message.sender_lw_user_id,
            RoomMember.line_user_id == Message.sender_line_user_id,
        ),
        RoomMember.joined_at <= Message.sent_at,
        sa.or_(RoomMember.left_at.is_(None), RoomMember.left_at > Message.sent_at),
    )
    return sa.select(sa.func.count()).select_from(Message).where(~member_then)


def test_same_seed_same_rows_other_seed_other_rows(generated, tmp_path_factory):
    url, _ = generated
    again = _fresh(tmp_path_factory, "again.db")
    generate(again, CONFIG.replace(chunk_size=777))  # chunking does not change the rows
    assert _rows(again) == _rows(url)
    other = _fresh(tmp_path_factory, "other.db")
    generate(other, CONFIG.replace(seed=43))
    assert _rows(other)["messages"] != _rows(url)["messages"]


def test_counts_match_the_report(generated):
    url, report = generated
    rows = _rows(url)
    assert report.messages == len(rows["messages"]) == CONFIG.messages
    assert report.rooms == len(rows["rooms"]) == CONFIG.n_rooms
    assert report.links == len(rows["links"])
    assert report.link_periods == len(rows["link_periods"])
    assert report.room_members == len(rows["room_members"])


def test_every_message_type_and_long_messages_are_present(generated):
    url, report = generated
    types = {m.message_type for m in _rows(url)["messages"]}
    assert types == {t.value for t in MessageType}
    lengths = [len(m.text) for m in _rows(url)["messages"] if m.text]
    assert any(32_000 < n <= 131_072 for n in lengths)
    assert any(n > 131_072 for n in lengths)
    assert report.long_messages >= 2
    assert any("\n" in m.text for m in _rows(url)["messages"] if m.text)


def test_non_text_messages_carry_file_names_or_content(generated):
    url, _ = generated
    for m in _rows(url)["messages"]:
        if m.message_type in ("image", "file", "audio", "video"):
            assert m.file_name and m.file_size and m.text is None
        elif m.message_type in ("sticker", "location"):
            assert m.text and m.file_name is None


def test_senders_are_room_members_at_send_time(generated):
    url, _ = generated
    assert _scalar(url, _senders_outside_membership()) == 0


def test_messages_fall_inside_the_window_in_utc(generated):
    url, report = generated
    times = [m.sent_at for m in _rows(url)["messages"]]
    assert all(t.tzinfo is not None for t in times)
    assert report.start <= min(times) and max(times) < report.end


def test_rooms_are_one_to_one_and_groups_with_churn(generated):
    url, _ = generated
    rows = _rows(url)
    members: dict[str, list] = {}
    for m in rows["room_members"]:
        members.setdefault(m.room_id, []).append(m)
    for room in rows["rooms"]:
        kinds = [m.member_kind for m in members[room.id]]
        if room.room_type == "one_to_one":
            assert sorted(kinds) == ["line", "lw"]
        else:
            assert kinds.count("lw") >= 1 and kinds.count("line") >= 1 and len(kinds) >= 3
    groups = [r for r in rows["rooms"] if r.room_type == "group"]
    assert any(
        len({m.lw_user_id for m in members[r.id] if m.lw_user_id}) >= 2
        and len({m.line_user_id for m in members[r.id] if m.line_user_id}) >= 2
        for r in groups
    )
    assert any(m.left_at is not None for m in rows["room_members"])
    assert any(m.joined_at > r.created_at for r in groups for m in members[r.id])


def test_names_are_japanese_some_with_emoji(generated):
    url, _ = generated
    names = [u.display_name for u in _rows(url)["line_users"]]
    assert any("\u4e00" <= ch <= "\u9fff" for n in names for ch in n)
    assert any(ord(ch) > 0xFFFF for n in names for ch in n)


def test_links_of_every_kind_with_unlinks_and_periods(generated):
    url, _ = generated
    rows = _rows(url)
    links = rows["links"]
    assert {link.target_type for link in links} == {t.value for t in TargetType}
    for link in links:
        assert link.link_key == f"{link.lw_user_id}:{link.line_user_id}"
        prefix = sfids.TARGET_PREFIXES[TargetType(link.target_type)]
        assert link.target_id.startswith(prefix) and sfids.is_case_safe_id(link.target_id)
    unlinked = [link for link in links if not link.linked]
    assert unlinked
    assert all(u.unlinked_at and u.nickname is None and u.app_link is None for u in unlinked)
    assert all(
        link.app_link.startswith("https://line.worksmobile.com/") for link in links if link.linked
    )
    periods: dict[int, list] = {}
    for p in rows["link_periods"]:
        periods.setdefault(p.link_id, []).append(p)
    for link in links:
        spans = sorted(periods[link.id], key=lambda p: p.started_at)
        assert (spans[-1].ended_at is None) == link.linked
        assert all(
            a.ended_at is not None and a.ended_at <= b.started_at
            for a, b in itertools.pairwise(spans)
        )


def test_some_customers_in_rooms_are_not_linked(generated):
    url, _ = generated
    rows = _rows(url)
    pairs = {
        (a.lw_user_id, b.line_user_id)
        for a in rows["room_members"]
        for b in rows["room_members"]
        if a.room_id == b.room_id and a.lw_user_id and b.line_user_id
    }
    linked = {(link.lw_user_id, link.line_user_id) for link in rows["links"]}
    assert linked < pairs


def test_a_customer_linked_by_two_staff_points_to_one_record(generated):
    url, _ = generated
    targets: dict[str, set[str]] = {}
    for link in _rows(url)["links"]:
        targets.setdefault(link.line_user_id, set()).add(link.target_id)
    assert all(len(t) == 1 for t in targets.values())


def test_target_ids_can_come_from_the_caller(tmp_path_factory):
    url = _fresh(tmp_path_factory, "targets.db")
    given = {kind: sfids.make_id(sfids.TARGET_PREFIXES[kind], 1) for kind in TargetType}
    generate(url, GeneratorConfig(messages=50, target_ids=lambda kind, n: given[kind]))
    assert {link.target_id for link in _rows(url)["links"]} == set(given.values())


def test_invariants_hold_on_every_backend(store_url):
    upgrade(store_url)
    config = CONFIG.replace(days=1, messages=1_500, quiet_day_share=0.0)
    report = generate(store_url, config)
    assert _scalar(store_url, sa.select(sa.func.count()).select_from(Message)) == 1_500
    assert _scalar(store_url, _senders_outside_membership()) == 0
    assert report.messages_by_type.keys() == {t.value for t in MessageType}
    rows = _rows(store_url)
    assert max(len(m.text or "") for m in rows["messages"]) > 131_072
    assert report.link_periods == len(rows["link_periods"])


def test_fifty_thousand_messages_in_chunks(tmp_path_factory):
    url = _fresh(tmp_path_factory, "big.db")
    config = GeneratorConfig(
        seed=7, n_staff=30, n_customers=400, n_rooms=300, messages=50_000, chunk_size=10_000
    )
    report = generate(url, config)
    assert report.messages == 50_000
    assert sum(report.messages_by_type.values()) == 50_000
    assert _scalar(url, sa.select(sa.func.count()).select_from(Message)) == 50_000
