"""Issue 16: the summary's sent counts and the dead letters' attempts are the sends Salesforce saw.

Row locks (the emulator's `lock_failure_rate`) make rows fail, and the loader sends the rows
answered RETRY_NOW again within the load. The emulator's own record of every ingest job (the
rows of its successful, failed and unprocessed results) is the truth: per object, `sent` is
the number of distinct rows it saw, `resent` the further sends, and every dead letter's
`attempts` the number of times its row reached Salesforce, across runs. Deletions (a re-run
after the Task copy was switched off) are counted the same way.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa

from talklog.deadletters import DELETE, operation_of
from talklog.pipeline import RunSummary, write_talk_logs
from talklog.settings import TalkLogSettings, TaskCopy
from talklog.store.models import DeadLetter
from talklog.windows import TalkWindow
from tests.integration.talklog_world import World, build_world
from tests.reliability.harness import CONFIG

pytestmark = pytest.mark.reliability

OBJECTS = {"TalkLog__c": "TalkLogKey__c", "Task": "LineWorksKey__c"}
RESULTS = ("successfulResults", "failedResults", "unprocessedrecords")
Sends = dict[tuple[str, str], Counter[str]]  # (object, operation) -> key -> sends


class Jobs:
    """The emulator's ingest jobs, read through its Bulk API: which rows each one was sent."""

    def __init__(self, emulator: Any) -> None:
        self.http = emulator.session()
        self.http.headers["Authorization"] = f"Bearer {emulator.token()}"
        self.base = f"{emulator.instance_url}/services/data/v66.0/jobs/ingest"
        self.seen: set[str] = {job["id"] for job in self._jobs()}

    def _jobs(self) -> list[dict[str, Any]]:
        return self.http.get(self.base, timeout=30).json()["records"]

    def new_sends(self, keys_of_ids: dict[str, str]) -> Sends:
        """Rows sent by the jobs created since the last call, by object, operation and key
        (deleted rows carry only their Id: `keys_of_ids` names them)."""
        sends: Sends = {}
        for job in self._jobs():
            if job["id"] in self.seen or job["object"] not in OBJECTS:
                continue
            self.seen.add(job["id"])
            counter = sends.setdefault((job["object"], job["operation"]), Counter())
            for kind in RESULTS:
                text = self.http.get(f"{self.base}/{job['id']}/{kind}", timeout=30).text
                for row in csv.DictReader(io.StringIO(text, newline="")):
                    key = row.get(OBJECTS[job["object"]]) or keys_of_ids[row["Id"]]
                    counter[key] += 1
        return sends


def _world(emulator: Any, url: str) -> World:
    emulator.reset()
    return build_world(emulator, url, CONFIG)  # links synced without faults


def _letters(world: World) -> list[DeadLetter]:
    with world.sessions() as session:
        return list(session.scalars(sa.select(DeadLetter)))


def _ids_to_keys(emulator: Any) -> dict[str, str]:
    return {r["Id"]: r[key] for obj, key in OBJECTS.items() for r in emulator.records(obj)}


def _check_counts(summary: RunSummary, sends: Sends, operation: str) -> None:
    for obj, load in (("TalkLog__c", summary.talklogs), ("Task", summary.tasks)):
        seen = sends.get((obj, operation), Counter())
        assert load["sent"] == len(seen), (obj, load)
        assert load["resent"] == seen.total() - len(seen), (obj, load)


def _check_attempts(world: World, tracked: Counter[tuple[str, str]], sends: Sends) -> int:
    """Every letter's attempts equal the sends of its row since the load that first kept
    it (`tracked`, updated here with this run's `sends`); returns the letters checked."""
    letters = _letters(world)
    for letter in letters:
        name = (letter.object_name, letter.record_key)
        tracked[name] += sends.get((letter.object_name, "upsert"), Counter())[letter.record_key]
        assert letter.attempts == tracked[name], (name, letter.status)
    return len(letters)


@pytest.mark.parametrize(("rate", "seed"), [(0.3, 32), (0.6, 62), (0.9, 93)])
def test_sent_resent_and_attempts_are_the_sends_salesforce_saw(rate, seed, emulator, sqlite_url):
    world = _world(emulator, sqlite_url)
    jobs = Jobs(emulator)
    emulator.set_faults(lock_failure_rate=rate, lock_seed=seed)
    tracked: Counter[tuple[str, str]] = Counter()
    resent = 0
    try:
        for run in (1, 2):  # the second run re-runs the window: the letters' rows again
            summary = world.write(TalkLogSettings(), f"run {run}")
            sends = jobs.new_sends({})
            _check_counts(summary, sends, "upsert")
            resent += summary.talklogs["resent"] + summary.tasks["resent"]
            assert _check_attempts(world, tracked, sends) > 0
    finally:
        emulator.set_faults(lock_failure_rate=0.0)
    assert resent > 0
    assert any(letter.attempts > 4 for letter in _letters(world))  # sent in both runs


@pytest.mark.parametrize(("rate", "seed"), [(0.5, 51), (0.9, 92)])
def test_deletions_are_counted_and_their_letters_ride_along(rate, seed, emulator, sqlite_url):
    world = _world(emulator, sqlite_url)
    assert world.write(TalkLogSettings(), "full").rejected == 0
    tasks_before = {r["LineWorksKey__c"] for r in emulator.records("Task")}
    ids = _ids_to_keys(emulator)
    jobs = Jobs(emulator)
    emulator.set_faults(lock_failure_rate=rate, lock_seed=seed)
    try:
        off = world.write(TalkLogSettings(task_copy=TaskCopy.OFF), "off")
    finally:
        emulator.set_faults(lock_failure_rate=0.0)
    sends = jobs.new_sends(ids)["Task", "delete"]
    assert off.tasks["sent"] == len(sends) > 0  # no Task upserted: every row sent is deleted
    assert off.tasks["resent"] == sends.total() - len(sends) > 0
    refused = [x for x in _letters(world) if operation_of(x.payload) == DELETE]
    assert refused and off.tasks["rejected"] == len(refused)
    assert off.tasks["deleted"] == len(sends) - len(refused)
    assert all(x.attempts == sends[x.record_key] and x.retryable for x in refused)

    after = world.window()  # the next window has no talk: the letters ride along with it
    later = write_talk_logs(
        sessions=world.sessions, store_url=world.url, query_all=world.clients.query_all,
        loader=world.loader, window=TalkWindow(after.end, after.end + dt.timedelta(hours=1)),
        settings=TalkLogSettings(task_copy=TaskCopy.OFF), run_id="next window",
    )  # fmt: skip
    assert later.tasks["dead_letters_retried"] == len(refused) and later.rejected == 0
    assert later.tasks["deleted"] == len(refused)
    remaining = {r["LineWorksKey__c"] for r in emulator.records("Task")}
    assert not remaining & {key for key in tasks_before if key.startswith("log|")}
    assert all(x.status == "resolved" for x in _letters(world) if operation_of(x.payload) == DELETE)
