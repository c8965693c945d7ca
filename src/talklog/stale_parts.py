"""What a re-run no longer writes: TalkLog parts and Tasks beyond today's transcript.

A run writes n `TalkLog__c` parts (`<key>|1..n`) and m `LINE WORKSログ` Tasks
(`log|<key>|1..m`, m per the Task-copy setting) per TalkLog. The ledger keeps how many
Salesforce may hold (`ledger.PartCounts`); when a re-run writes fewer (a message deleted from
the store, the setting changed to no_content or off, every message of the transcript gone)
the rest is deleted, so that Salesforce holds what a first run with today's data would.

Only the TalkLogs the window claimed are looked at: other windows' records stay theirs. The
counts are raised before anything is sent (a run stopped midway leaves an upper bound) and
lowered once the deletions are through. Claims written before store revision 0003 (counts
not known) are looked up in Salesforce by key prefix, once.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from talklog import ledger
from talklog.batching import chunked
from talklog.ledger import NO_PARTS, PartCounts
from talklog.loading import LoadOutcome
from talklog.salesforce.soql import quote
from talklog.talklogs import talklog_part_key, task_part_key
from talklog.targets import QueryAll
from talklog.windows import TalkWindow

PREFIXES_PER_QUERY = 25
"""TalkLog keys per SOQL `LIKE` lookup (each condition ~150 characters)."""


@dataclass
class StaleParts:
    """The records of a window's TalkLogs that this run does not write, by object."""

    written: dict[str, PartCounts]  # what this run writes, per TalkLog
    bounds: dict[str, PartCounts] = field(default_factory=dict)  # what Salesforce may hold
    talklogs: dict[str, list[str]] = field(default_factory=dict)  # TalkLog -> part keys
    tasks: dict[str, list[str]] = field(default_factory=dict)  # TalkLog -> Task keys

    def keys(self, object_name: str) -> list[str]:
        """Every key of `object_name` (`TalkLog__c` or `Task`) to delete."""
        stale = self.talklogs if object_name == "TalkLog__c" else self.tasks
        return [key for keys in stale.values() for key in keys]


def plan(
    sessions: sessionmaker[Session],
    query_all: QueryAll,
    window: TalkWindow,
    written: Mapping[str, PartCounts],
    rooms: Collection[str] | None = None,
) -> StaleParts:
    """Compare what this run writes (`written`, per TalkLog key) with what Salesforce may
    hold for every TalkLog `window` claimed (in `rooms`, when the run is limited to some),
    and raise the ledger's counts to cover both."""
    with sessions() as session:
        recorded = ledger.part_counts(session, window, rooms)
    unknown = sorted(key for key, counts in recorded.items() if None in counts)
    held = {**recorded, **held_in_salesforce(query_all, unknown)}
    stale = StaleParts(dict(written))
    for key in sorted(held.keys() | written.keys()):
        before, now = held.get(key, NO_PARTS), written.get(key, NO_PARTS)
        stale.bounds[key] = PartCounts(
            max(before.talklogs or 0, now.talklogs or 0), max(before.tasks or 0, now.tasks or 0)
        )
        stale.talklogs[key] = _beyond(key, now.talklogs, before.talklogs, talklog_part_key)
        stale.tasks[key] = _beyond(key, now.tasks, before.tasks, task_part_key)
    raised = {key: n for key, n in stale.bounds.items() if recorded.get(key) != n}
    with sessions.begin() as session:
        ledger.record_part_counts(session, raised)
    return stale


def _beyond(key: str, now: int | None, before: int | None, part_key) -> list[str]:
    return [part_key(key, n) for n in range((now or 0) + 1, (before or 0) + 1)]


def settle(
    sessions: sessionmaker[Session],
    stale: StaleParts,
    talklogs: LoadOutcome,
    tasks: LoadOutcome,
) -> None:
    """Record what Salesforce holds once the deletions ran: a TalkLog whose stale parts (or
    Tasks) are all gone holds what this run wrote; the others keep their upper bound, so the
    next run of the window deletes what is left (their dead letters ride along meanwhile)."""
    settled = {}
    for key, bound in stale.bounds.items():
        now = stale.written.get(key, NO_PARTS)
        counts = PartCounts(
            now.talklogs if _gone(stale.talklogs.get(key, ()), talklogs) else bound.talklogs,
            now.tasks if _gone(stale.tasks.get(key, ()), tasks) else bound.tasks,
        )
        if counts != bound:
            settled[key] = counts
    with sessions.begin() as session:
        ledger.record_part_counts(session, settled)


def _gone(keys: Iterable[str], removed: LoadOutcome) -> bool:
    return all(key in removed.accepted_keys for key in keys)


def held_in_salesforce(query_all: QueryAll, talklog_keys: Iterable[str]) -> dict[str, PartCounts]:
    """`PartCounts` of TalkLogs whose counts the ledger does not know, from Salesforce: the
    highest part number found under each key prefix (0: none), one SOQL per chunk of keys
    and object."""
    found: dict[str, PartCounts] = {}
    for chunk in chunked(sorted(talklog_keys), PREFIXES_PER_QUERY):
        parts = _highest_parts(query_all, "TalkLog__c", "TalkLogKey__c", chunk, "")
        tasks = _highest_parts(query_all, "Task", "LineWorksKey__c", chunk, "log|")
        found.update({key: PartCounts(parts.get(key, 0), tasks.get(key, 0)) for key in chunk})
    return found


def _highest_parts(
    query_all: QueryAll, object_name: str, key_field: str, talklog_keys: list[str], prefix: str
) -> dict[str, int]:
    """TalkLog key -> the highest part number of the `<prefix><key>|<n>` records.

    LIKE treats `_` and `%` in a key as wildcards: what else matches is left out here.
    """
    wanted = {prefix + key: key for key in talklog_keys}
    where = " OR ".join(f"{key_field} LIKE {quote(base + '|%')}" for base in wanted)
    highest: dict[str, int] = {}
    for row in query_all(f"SELECT {key_field} FROM {object_name} WHERE {where}"):
        base, _, number = str(row[key_field]).rpartition("|")
        if base in wanted and number.isdigit():
            key = wanted[base]
            highest[key] = max(highest.get(key, 0), int(number))
    return highest
