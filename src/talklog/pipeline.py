"""One talk window, end to end: extract -> plan (ledger claims) -> transcripts -> load."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections import Counter
from collections.abc import (
    Callable,
    Collection,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from talklog import ledger, stale_parts
from talklog.batching import collector_paused
from talklog.extract import RoomContext, count_window_messages, room_contexts, window_lines
from talklog.ledger import Claim, PartCounts
from talklog.loading import BulkLoader, LoadOutcome, patient_queries
from talklog.owners import Owners, staff_emails, staff_owners
from talklog.reader import can_read_in_child, window_lines_in_child
from talklog.salesforce.bulk import CsvSpool, RequestLimitExceededError
from talklog.salesforce.fields import UPSERT_KEYS
from talklog.store.models import LineWorksUser
from talklog.summary import JobSummary
from talklog.talklogs import (
    TalkLogDraft,
    TalkLogSettings,
    render_draft,
    room_claims,
    room_drafts,
    talklog_rows,
    task_rows,
)
from talklog.targets import (
    CustomerRecord,
    Describe,
    QueryAll,
    person_accounts_enabled,
    resolve_customers,
)
from talklog.transcripts import TalkLine
from talklog.unreadable_rows import UnreadableRows
from talklog.windows import TalkWindow

# From this many messages a window's messages are read by a second process (another core);
# below it, starting that process costs more than it saves (measured: 1.4 s lost at 100,000
# messages, 4-6 s saved at 1,000,000).
READER_PROCESS_MIN_MESSAGES = 250_000
STALE_ORDER = ("Task", "TalkLog__c")  # stale records are deleted before the upserts
# Rooms are claimed in batches of about this many lines: one ledger statement per batch
# instead of three per room (a 1M window has thousands of rooms).
CLAIM_BATCH_LINES = 20_000


@dataclass
class RunSummary(JobSummary):
    """What a talk-log run wrote: small and JSON-able, shown in the Airflow UI."""

    window: str
    window_label: str
    rooms: int = 0
    messages: int = 0
    transcripts: int = 0
    pairs_owned_by_other_windows: int = 0
    quarantined: int = 0  # store rows it cannot read or render (messages left out)
    quarantine_resolved: int = 0  # quarantined rows this run could read
    unresolved_targets: dict[str, int] = field(default_factory=dict)
    tasks_owned_by_integration_user: dict[str, int] = field(default_factory=dict)  # by reason
    staff_without_active_user: dict[str, list[str]] = field(default_factory=dict)  # LW user ids
    talklogs: dict[str, Any] = field(default_factory=dict)
    tasks: dict[str, Any] = field(default_factory=dict)

    def loads(self) -> Iterable[Mapping[str, Any]]:
        return (self.talklogs, self.tasks)


@dataclass
class _Staged:
    talklogs: CsvSpool = field(default_factory=lambda: CsvSpool([UPSERT_KEYS["TalkLog__c"]]))
    tasks: CsvSpool = field(default_factory=lambda: CsvSpool([UPSERT_KEYS["Task"]]))
    first_task_key: dict[str, str | None] = field(default_factory=dict)
    written: dict[str, PartCounts] = field(default_factory=dict)  # parts and Tasks per TalkLog
    owners: Owners = field(default_factory=lambda: Owners({}, {}))
    rooms: Collection[str] | None = None  # only these rooms (a replay's); None: every room

    def close(self) -> None:
        self.talklogs.close()
        self.tasks.close()


def write_talk_logs(
    *,
    sessions: sessionmaker[Session],
    store_url: str | sa.URL,
    query_all: QueryAll,
    loader: BulkLoader,
    window: TalkWindow,
    settings: TalkLogSettings,
    rooms: Collection[str] | None = None,
    staged_keys: set[str] | None = None,
    run_id: str | None = None,
    api_calls: Callable[[], int] | None = None,
    reader_process_min_messages: int | None = READER_PROCESS_MIN_MESSAGES,
    describe: Describe | None = None,
) -> RunSummary:
    """Write the transcripts of `window` to Salesforce; safe to repeat for the same window.

    `describe` tells whether the org has Person Accounts (one call per run; None: assumed).

    `store_url` is the URL `sessions` are bound to. A window of at least
    `reader_process_min_messages` messages (None: never) is read by a second process, which
    opens the store at that URL, while this one claims and renders (see `talklog.reader`).

    `rooms` limits the run to those rooms (a replay rebuilds its letters' rooms so); the keys
    of the TalkLog and Task rows it writes are added to `staged_keys` when given.
    """
    summary = RunSummary(window.key(), window.label(settings.timezone))
    staged = _Staged(rooms=rooms)
    query_all = patient_queries(query_all, sleep=loader.sleep)
    try:
        with collector_paused():
            _stage(sessions, store_url, query_all, window, settings, run_id, summary, staged,
                   reader_process_min_messages, describe, loader.sleep)  # fmt: skip
        if staged_keys is not None:
            staged_keys.update(staged.talklogs.keys(UPSERT_KEYS["TalkLog__c"]))
            staged_keys.update(staged.tasks.keys(UPSERT_KEYS["Task"]))
        stale = stale_parts.plan(sessions, query_all, window, staged.written, staged.rooms)
        removed = {name: _delete_stale(loader, query_all, stale, name) for name in STALE_ORDER}
        # A Task names its TalkLog by key (TalkLogKey__c is text, not a lookup): both
        # objects' jobs are submitted before Salesforce is asked how any is doing.
        talklogs, tasks = loader.upsert_all(
            [
                ("TalkLog__c", UPSERT_KEYS["TalkLog__c"], staged.talklogs),
                ("Task", UPSERT_KEYS["Task"], staged.tasks),
            ]
        )
        summary.talklogs = talklogs.merged(removed["TalkLog__c"]).summary()
        summary.tasks = tasks.merged(removed["Task"]).summary()
        staged.owners.count_refused(tasks.resent_without_owner)
        summary.tasks_owned_by_integration_user = staged.owners.tasks_by_reason()
        summary.staff_without_active_user = staged.owners.staff_by_reason()
        # Only a load that ran to the end marks claims delivered: a run stopped midway (API
        # budget, outage) leaves them open, and the re-run of its window writes them again.
        _mark_delivered(sessions, staged.first_task_key, talklogs, tasks.accepted_keys)
        stale_parts.settle(sessions, stale, removed["TalkLog__c"], removed["Task"])
    except RequestLimitExceededError as exc:
        exc.add_note(
            f"talk window {summary.window_label}: the org's daily API budget is spent; nothing"
            " is lost: re-run this window once the budget is back"
        )
        raise
    finally:
        staged.close()
    summary.api_calls = api_calls() if api_calls else None
    return summary


def _stage(
    sessions: sessionmaker[Session],
    store_url: str | sa.URL,
    query_all: QueryAll,
    window: TalkWindow,
    settings: TalkLogSettings,
    run_id: str | None,
    summary: RunSummary,
    staged: _Staged,
    reader_process_min_messages: int | None,
    describe: Describe | None,
    sleep: Callable[[float], None],
) -> None:
    """Claim this window's (message, customer) pairs and park its TalkLog and Task rows."""
    with (
        sessions.begin() as session,
        open_window_lines(
            session, store_url, window, reader_process_min_messages, staged.rooms, settings.timezone
        ) as rooms,
    ):
        contexts = room_contexts(session, window, staged.rooms)
        unreadable = UnreadableRows.open(session, ZoneInfo(settings.timezone))
        unreadable.screen_rooms(contexts.values())
        linked = {(link.target_type, link.target_id) for c in contexts.values() for link in c.links}
        person_accounts = person_accounts_enabled(describe, sleep=sleep) if linked else True
        placed, unresolved = resolve_customers(
            query_all, sorted(linked), person_accounts=person_accounts
        )
        summary.unresolved_targets = dict(Counter(item.reason.split(":")[0] for item in unresolved))
        users = _staff_users(session, contexts.values())
        staged.owners = staff_owners(query_all, users, emails=staff_emails(session, users))
        staff = staged.owners.owner_ids
        for batch in _claim_batches(rooms, contexts, unreadable, placed, window, summary):
            owned = ledger.claim_rooms(session, [item.claims for item in batch], window, run_id)
            for item, room_owned in zip(batch, owned, strict=True):
                drafts, foreign = room_drafts(
                    item.room, item.lines, room_owned, placed, staff, window
                )
                summary.pairs_owned_by_other_windows += foreign
                summary.transcripts += len(drafts)
                for draft in drafts:
                    _stage_draft(draft, settings, item.rendered, staged)
        summary.quarantined, summary.quarantine_resolved = unreadable.settle(session, run_id)


class _RoomClaims(NamedTuple):
    """A room's screened lines, their rendering and the pairs it would deliver."""

    room: RoomContext
    lines: Sequence[TalkLine]
    claims: Sequence[Claim]
    rendered: Mapping[int, str]


def _claim_batches(
    rooms: Iterator[RoomLines],
    contexts: Mapping[str, RoomContext],
    unreadable: UnreadableRows,
    placed: Mapping[str, CustomerRecord],
    window: TalkWindow,
    summary: RunSummary,
) -> Iterator[list[_RoomClaims]]:
    """The window's rooms with their claims, in batches of about `CLAIM_BATCH_LINES` lines
    (claimed together: `ledger.claim_rooms`)."""
    batch: list[_RoomClaims] = []
    size = 0
    for room_id, lines, rendered in rooms:
        room = contexts.get(room_id)
        if room is None:
            # Imported after this run read the window's rooms (the reader process reads
            # with its own snapshot): left to the window's next run, as a later import is.
            continue
        summary.rooms += 1
        summary.messages += len(lines)
        claims = room_claims(room, lines, placed, window)
        screened, kept, claims = unreadable.screen(room_id, lines, claims, rendered)
        batch.append(_RoomClaims(room, kept, claims, screened))
        size += len(kept)
        if size >= CLAIM_BATCH_LINES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _stage_draft(
    draft: TalkLogDraft, settings: TalkLogSettings, rendered: Mapping[int, str], staged: _Staged
) -> None:
    """Park one transcript's TalkLog and Task rows, and what they hold."""
    sizes = len(staged.talklogs), len(staged.tasks)
    text = render_draft(draft, settings, rendered)
    for row in talklog_rows(draft, settings, text):
        staged.talklogs.add(row)
    first_task = None
    for row in task_rows(draft, settings, text):
        first_task = first_task or row["LineWorksKey__c"]
        staged.tasks.add(row)
        staged.owners.count_task(draft.link.lw_user_id)
    staged.first_task_key[draft.key] = first_task
    staged.written[draft.key] = PartCounts(
        len(staged.talklogs) - sizes[0], len(staged.tasks) - sizes[1]
    )


def _staff_users(session: Session, rooms: Iterable[RoomContext]) -> dict[str, str | None]:
    """LW user id -> Salesforce user id (store), for the staff linked in the window's rooms."""
    linked = {link.lw_user_id for room in rooms for link in room.links}
    staff = session.execute(sa.select(LineWorksUser.id, LineWorksUser.salesforce_user_id))
    return {lw_user_id: user for lw_user_id, user in staff if lw_user_id in linked}


RoomLines = tuple[str, list[TalkLine], dict[int, str] | None]
"""A room, its lines, and the lines rendered already (message id -> line; None: not yet). The
lines of a room rendered already may hold their ids and times only (`talklog.reader`)."""


@contextlib.contextmanager
def open_window_lines(
    session: Session,
    store_url: str | sa.URL,
    window: TalkWindow,
    reader_process_min_messages: int | None,
    rooms: Collection[str] | None = None,
    zone: str | None = None,
) -> Generator[Iterator[RoomLines]]:
    """The window's rooms and their lines (`extract.window_lines`; only `rooms`, when given,
    read here), read by a second process (from the store at `store_url`) when the window is
    big enough and the store can be opened twice; that process also renders them in `zone`
    (`reader.window_lines_in_child`), on its own core."""
    url = sa.make_url(store_url)
    if (
        rooms is None
        and reader_process_min_messages is not None
        and can_read_in_child(url)
        and count_window_messages(session, window) >= reader_process_min_messages
    ):
        with window_lines_in_child(url, window, zone=zone) as lines:
            yield lines
    else:
        yield (
            (room_id, lines, None) for room_id, lines in window_lines(session, window, rooms=rooms)
        )


def _delete_stale(
    loader: BulkLoader, query_all: QueryAll, stale: stale_parts.StaleParts, object_name: str
) -> LoadOutcome:
    """Delete the records of `object_name` this run no longer writes (and, riding along, the
    object's open retryable deletion letters)."""
    return loader.delete(object_name, UPSERT_KEYS[object_name], stale.keys(object_name), query_all)


def _mark_delivered(
    sessions: sessionmaker[Session],
    first_task_key: dict[str, str | None],
    talklogs: LoadOutcome,
    accepted_tasks: set[str],
) -> None:
    """A transcript is delivered when every part of it was accepted; its Task is recorded
    when Salesforce accepted that too (a rejected Task is a dead letter of its own)."""
    delivered = {}
    for key in ledger.completed_talklogs(talklogs.accepted_keys, talklogs.rejected):
        task = first_task_key.get(key)
        delivered[key] = task if task in accepted_tasks else None
    with sessions.begin() as session:
        ledger.mark_delivered(session, delivered, dt.datetime.now(dt.UTC))
