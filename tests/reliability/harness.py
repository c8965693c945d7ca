"""Jobs, Salesforce state and its comparison, shared by the reliability tests.

A job is one of the DAGs' domain functions (talk-log windows, link sync, re-link) run through
the production wiring (`TalkLogSalesforceHook`). `state` reads the emulator's records with ids
replaced by stable labels; `compare` counts duplicates, missing and differing records.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from talklog import deadletters
from talklog.relink import relink
from talklog.salesforce.bulk import NO_EXPECTATION
from talklog.windows import TalkWindow
from talklog_dev.synth import GeneratorConfig
from tests.integration.talklog_world import (
    DAY,
    VOLATILE,
    Clients,
    World,
    build_world,
    delivered_lines,
    expected,
    labels,
)

CONFIG = GeneratorConfig(
    seed=9,
    day=DAY,
    n_staff=5,
    n_customers=16,
    n_rooms=12,
    group_share=0.4,
    messages=300,
    long_message_share=0.01,
)
KEYS = {"TalkLog__c": "TalkLogKey__c", "Task": "LineWorksKey__c", "LineWorks__c": "LinkKey__c"}
_ID = re.compile(r"\b[a-zA-Z0-9]{18}\b")

State = dict[str, dict[str, list[dict[str, Any]]]]  # object -> key -> records with that key


def hook_clients() -> Clients:
    """The clients the DAGs use, from `salesforce_default` (set to the emulator)."""
    from talklog_airflow.hooks.salesforce import TalkLogSalesforceHook

    hook = TalkLogSalesforceHook()
    # jobs made slow by a count of polls (not by time): looked at again 1.5 times later each
    bulk = hook.bulk_client(poll_interval=0.01, expected_pace=NO_EXPECTATION)
    return Clients(hook.conn.query_all_iter, bulk, hook.http_session)


def quarters(window: TalkWindow) -> list[TalkWindow]:
    """Four consecutive windows tiling `window` (the 6-hourly runs of a day)."""
    step = (window.end - window.start) / 4
    return [TalkWindow(window.start + step * n, window.start + step * (n + 1)) for n in range(4)]


# -- jobs -------------------------------------------------------------------------------------


def run_talklogs(world: World, run_id: str) -> int:
    """The day's four 6-hourly windows; returns the rows Salesforce rejected."""
    return sum(world.run(window, run_id).rejected for window in quarters(world.window()))


def run_link_sync(world: World, run_id: str) -> int:
    return world.sync_links().rejected


def run_relink(world: World, run_id: str) -> int:
    clients = world.clients
    return relink(
        sessions=world.sessions,
        query_all=clients.query_all,
        bulk_query=clients.bulk.query,
        loader=world.loader,
    ).rejected


def prepare_relink(world: World) -> None:
    """The day written, then customers move: lead links on external contacts, conversions."""
    assert run_talklogs(world, "before relink") == 0
    em = world.emulator
    by_name = {r["Name"]: r["Id"] for r in em.records("ExternalContact__c")}
    leads = {r["LastName"]: r["Id"] for r in em.records("Lead")}
    sf = em.salesforce()
    for n in range(2, 8):
        lead = em.create_record("Lead", LastName=f"RL{n}", Company=f"RCo{n}")
        sf.ExternalContact__c.update(by_name[f"EC{n}"], {"Lead__c": lead})
        if n % 3 == 0:
            em.convert_lead(lead, personAccount=n % 2 == 0)
    for n in (2, 3):
        em.convert_lead(leads[f"L{n}"], personAccount=n == 3)


@dataclass(frozen=True)
class Job:
    name: str
    sync_first: bool
    run: Callable[[World, str], int]
    prepare: Callable[[World], None] = lambda world: None


JOBS = (
    Job("talk-log windows", True, run_talklogs),
    Job("link sync", False, run_link_sync),
    Job("re-link", True, run_relink, prepare_relink),
)


def job_world(emulator: Any, url: str, job: Job) -> World:
    """A fresh world for `job`, prepared fault-free; the emulator's counters are zeroed."""
    emulator.reset()
    world = build_world(emulator, url, CONFIG, hook_clients, sync=job.sync_first)
    job.prepare(world)
    return world


def open_letters(world: World) -> int:
    with world.sessions() as session:
        return sum(deadletters.count_open(session).values())


# -- state -------------------------------------------------------------------------------------


def state(emulator: Any) -> State:
    """TalkLog__c, Task and LineWorks__c records by external key, ids as labels, stamps dropped."""
    names = labels(emulator)
    found: State = {}
    for obj, key in KEYS.items():
        rows: dict[str, list[dict[str, Any]]] = {}
        for record in emulator.records(obj):
            clean = {k: _relabel(v, names) for k, v in record.items() if k not in VOLATILE}
            rows.setdefault(str(clean.get(key)), []).append(clean)
        found[obj] = rows
    return found


def _relabel(value: Any, names: dict[str, str]) -> Any:
    if not isinstance(value, str):
        return value
    return _ID.sub(lambda match: names.get(match.group(0), match.group(0)), value)


@dataclass(frozen=True)
class Difference:
    duplicates: int
    missing: int
    differing: int

    @property
    def none(self) -> bool:
        return not (self.duplicates or self.missing or self.differing)


def compare(final: State, baseline: State) -> Difference:
    """Duplicates (a key twice, or a key the baseline lacks), missing keys, differing records."""
    duplicates = missing = differing = 0
    for obj, rows in baseline.items():
        got = final.get(obj, {})
        duplicates += sum(len(records) - 1 for records in got.values())
        duplicates += sum(len(records) for key, records in got.items() if key not in rows)
        missing += sum(1 for key in rows if key not in got)
        differing += sum(1 for key in rows if key in got and got[key][0] != rows[key][0])
    return Difference(duplicates, missing, differing)


def message_entries(world: World) -> tuple[int, int]:
    """(entries shown more than once, entries missing) over every target record."""
    wanted = expected(world).lines
    found = delivered_lines(world.emulator)
    extra = missing = 0
    for home in set(wanted) | set(found):
        have, want = found.get(home, Counter()), wanted.get(home, Counter())
        extra += sum((have - want).values())
        missing += sum((want - have).values())
    return extra, missing


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)
