"""The generated world as LINE WORKS holds it: deterministic, and the generator's own messages."""

from __future__ import annotations

import random

from talklog_dev.synth.generator import GeneratorConfig, _make_plan, _MessageStream
from talklog_dev.synth.lineworks import lineworks_world

CONFIG = GeneratorConfig(seed=7, messages=80, n_staff=3, n_customers=6, n_rooms=5)


def test_the_same_seed_gives_the_same_users_contacts_and_rows():
    first, second = lineworks_world(CONFIG), lineworks_world(CONFIG)
    assert first.users == second.users and first.contacts == second.contacts
    assert list(first.talk_rows()) == list(second.talk_rows())


def test_talk_rows_are_the_generator_messages_plus_bot_posts_in_time_order():
    world = lineworks_world(CONFIG)
    rows = list(world.talk_rows())
    people = [r for r in rows if not r.is_bot]
    assert len(people) == 80 and len(rows) > 80
    assert [r.sent_at for r in rows] == sorted(r.sent_at for r in rows)
    rng = random.Random(CONFIG.seed)
    plan = _make_plan(CONFIG, rng)
    messages = [m for chunk in _MessageStream(rng, CONFIG, plan.rooms).chunks() for m in chunk]
    assert [(r.sent_at, r.channel_id, r.text) for r in people] == [
        (m["sent_at"], m["room_id"], m["text"]) for m in messages
    ]
    assert {u["userId"] for u in world.users} == {s["id"] for s in plan.staff}


def test_a_renamed_customer_shows_the_new_name_everywhere():
    world = lineworks_world(CONFIG)
    customer = next(iter(world.customers))
    rows = list(world.talk_rows({customer: "新しい名前"}))
    parties = [p for r in rows for p in (r.sender, *r.receivers) if p.id == customer]
    assert parties and all(p.name == "新しい名前" for p in parties)
