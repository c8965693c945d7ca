"""Each example of the spec's section 5 writes what it says, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

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
    Room,
    TargetType,
)
from talklog_dev.synth import sfids
from talklog_dev.synth.examples import EXAMPLES, Example, Target, write_examples

DAY = dt.date(2025, 1, 9)

# name -> (room type, links, records receiving a transcript, a speaker whose lines they include)
SPEC = {
    "one_to_one_linked": ("one_to_one", 1, 1, "鈴木 一郎"),
    "one_to_one_unlinked": ("one_to_one", 0, 0, None),
    "group_both_linked": ("group", 2, 2, "佐藤 花子🌸"),
    "group_one_linked": ("group", 1, 1, "佐藤 花子🌸"),
    "group_two_staff_same_target": ("group", 2, 1, "高橋 健太"),
    "group_two_staff_one_link": ("group", 1, 1, "高橋 健太"),
}


def _read(url: str, example: Example) -> dict:
    engine = make_engine(url)
    names = sa.func.coalesce(LineWorksUser.display_name, LineUser.display_name)
    try:
        with engine.connect() as conn:
            room = conn.execute(sa.select(Room).where(Room.id == example.room_id)).one()
            links = conn.execute(sa.select(Link).where(Link.link_key.in_(example.link_keys))).all()
            periods = conn.execute(sa.select(LinkPeriod)).all()
            speakers = conn.execute(
                sa.select(names)
                .select_from(Message)
                .outerjoin(LineWorksUser, LineWorksUser.id == Message.sender_lw_user_id)
                .outerjoin(LineUser, LineUser.id == Message.sender_line_user_id)
                .where(
                    Message.room_id == example.room_id,
                    Message.sent_at >= example.window_start,
                    Message.sent_at < example.window_end,
                )
            ).scalars()
            return {"room": room, "links": links, "periods": periods, "speakers": list(speakers)}
    finally:
        engine.dispose()


def test_the_registry_holds_the_six_examples():
    assert list(EXAMPLES) == list(SPEC)


@pytest.mark.parametrize("name", list(SPEC))
def test_example_writes_what_it_says(store_url, name):
    upgrade(store_url)
    example = EXAMPLES[name](store_url, DAY)
    room_type, n_links, n_recipients, included = SPEC[name]
    found = _read(store_url, example)

    assert found["room"].room_type == room_type == example.room_type
    assert len(found["links"]) == n_links == len(example.link_keys)
    assert all(link.linked for link in found["links"])
    assert len(found["periods"]) == n_links
    assert {link.target_id for link in found["links"]} == example.recipients
    assert len(example.recipients) == n_recipients == len(example.transcripts)
    assert len(found["speakers"]) == len(example.message_keys)
    for transcript in example.transcripts:
        assert transcript.room_id == example.room_id
        assert transcript.message_count == len(found["speakers"])
        assert transcript.speakers == set(found["speakers"])
        assert included in transcript.speakers
    assert example.window_start == dt.datetime(2025, 1, 8, 15, tzinfo=dt.UTC)


def test_all_examples_share_one_store_and_take_the_callers_targets(sqlite_url):
    upgrade(sqlite_url)
    yamada = sfids.make_id(sfids.LEAD_PREFIX, 11)
    sato = sfids.make_id(sfids.ACCOUNT_PREFIX, 12)
    examples = write_examples(sqlite_url, DAY, {"yamada": yamada, "sato": sato})
    assert examples["group_both_linked"].recipients == {yamada, sato}
    assert examples["group_two_staff_same_target"].recipients == {yamada}
    assert examples["one_to_one_unlinked"].recipients == frozenset()
    targets = {t for e in examples.values() for t in e.link_keys.values()}
    assert targets == {Target(TargetType.LEAD, yamada), Target(TargetType.PERSON_ACCOUNT, sato)}
