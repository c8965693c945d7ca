"""The LINE WORKS emulator's admin additions, through the real client: a talk added at a time
of the test's choosing is in later downloads of its period; a renamed contact is read with its
new name and modification time; `reset` forgets both."""

from __future__ import annotations

import csv
import datetime as dt
import random

import pytest
import requests

from talklog_airflow.hooks.lineworks import LineWorksHook
from talklog_dev.synth.generator import GeneratorConfig, _make_plan
from tests.fixtures.emulator import LINEWORKS_WORLD

AT = dt.datetime(2026, 3, 1, 12, 0, 30, tzinfo=dt.UTC)  # after the generated world's days


def _room() -> tuple[str, str, list[str]]:
    """A room of the world, a customer in it and its other members at `AT`."""
    config = emulator_config()
    for room in _make_plan(config, random.Random(config.seed)).rooms:
        now = [m for m in room.members if m.active(int(AT.timestamp() * 1000))]
        customers = [m.user_id for m in now if m.kind.value == "line"]
        if customers:
            others = [m.user_id for m in now if m.user_id != customers[0]]
            return room.id, customers[0], others
    raise AssertionError("no room with a customer")


def emulator_config() -> GeneratorConfig:
    """The world of the session's emulator (`LINEWORKS_WORLD`, the defaults otherwise)."""
    options = dict(zip(LINEWORKS_WORLD[::2], LINEWORKS_WORLD[1::2], strict=True))
    return GeneratorConfig(
        seed=1,
        messages=int(options["--messages"]),
        n_staff=int(options["--staff"]),
        n_customers=int(options["--customers"]),
        n_rooms=int(options["--rooms"]),
        days=int(options["--days"]),
    )


def _download(tmp_path) -> list[list[str]]:
    target = tmp_path / "talks.csv"
    start, end = AT - dt.timedelta(minutes=5), AT + dt.timedelta(minutes=5)
    LineWorksHook().client.download_talks(start, end, target)
    with target.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.reader(handle))[1:]


def test_an_added_talk_is_downloaded_in_its_period_until_reset(lineworks_conn, tmp_path):
    room, customer, others = _room()
    assert _download(tmp_path) == []
    added = lineworks_conn.admin(
        "POST",
        "talks",
        {"channelId": room, "senderId": customer, "text": "追加のトーク", "sentAt": AT.isoformat()},
    )
    assert added["sentAt"] == AT.isoformat()
    (row,) = _download(tmp_path)
    assert row[0] == "2026-03-01T21:00:30+09:00" and row[3] == room and row[4] == "追加のトーク"
    assert row[2].count(", ") == len(others) - 1  # the room's other members receive it
    lineworks_conn.reset()
    assert _download(tmp_path) == []


@pytest.mark.parametrize(
    "change",
    [{"channelId": "no-room"}, {"senderId": "no-member"}, {"sentAt": "2026-03-01T12:00:00"}],
)
def test_a_talk_outside_the_world_is_refused(lineworks_conn, change):
    room, customer, _ = _room()
    body = {"channelId": room, "senderId": customer, "text": "x", "sentAt": AT.isoformat()}
    with pytest.raises(requests.HTTPError) as caught:
        lineworks_conn.admin("POST", "talks", {**body, **change})
    assert caught.value.response.status_code == 400
    assert caught.value.response.json()["code"] == "INVALID_PARAMETER"


def test_a_renamed_contact_is_read_with_its_new_name_and_time_until_reset(lineworks_conn):
    client = LineWorksHook().client
    before = next(c for c in client.contacts() if c.is_line_user)
    renamed = lineworks_conn.admin(
        "POST",
        "contact-name",
        {"contactId": before.contact_id, "lastName": "新姓", "firstName": "名"},
    )
    assert renamed["contactName"] == {"lastName": "新姓", "firstName": "名"}
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    until = since + dt.timedelta(minutes=2)
    (after,) = client.contacts(since, until, "MODIFIED_TIME")
    assert after.contact_id == before.contact_id and after.modified_time > before.modified_time
    lineworks_conn.reset()
    assert list(client.contacts(since, until, "MODIFIED_TIME")) == []
