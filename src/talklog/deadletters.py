"""Dead letters: records Salesforce rejected, kept with their error until a load succeeds.

Errors that pass by themselves (row locks, timeouts, a lookup target not synced yet: the
failure policy's RETRY_NOW and RETRY_NEXT_RUN rows, `talklog.salesforce.failures`) are retried
by later runs automatically; the others wait for an operator's replay after the cause is
fixed. Payloads are kept in the store, never logged.

A letter is an upsert (its payload is the row sent) or a deletion (`deletion_payload`: the
record's key and Id, marked with `OPERATION`). Upsert rides along and replays take upsert
letters only (`open_letters`); deletions ride along with the next deletions of their object.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from talklog.batching import IN_LIST_SIZE, chunked
from talklog.salesforce.failures import classify
from talklog.store.models import DeadLetter, DeadLetterStatus

MAX_AUTOMATIC_ATTEMPTS = 10
"""A retryable letter sent this often (in-load retries included) stops riding along and
waits for a replay: its cause did not pass by itself (a lookup target that never syncs, a
lock that stays)."""
OPERATION = "_operation"
"""The payload key that marks a deletion letter (absent from upsert letters)."""
UPSERT, DELETE = "upsert", "delete"


def deletion_payload(key_field: str, record_key: str, record_id: str) -> dict[str, Any]:
    """The payload of a deletion letter: which record, by external key and Id."""
    return {OPERATION: DELETE, key_field: record_key, "Id": record_id}


def operation_of(payload: Mapping[str, Any]) -> str:
    """`DELETE` for a deletion letter's payload, `UPSERT` for a row to upsert."""
    return DELETE if payload.get(OPERATION) == DELETE else UPSERT


@dataclass(frozen=True)
class Rejection:
    """One rejected record: which, why, what was sent, and how often in this load."""

    object_name: str
    record_key: str
    error_code: str
    error_message: str
    error_fields: str | None
    payload: dict[str, Any]
    sends: int = 1

    @property
    def retryable(self) -> bool:
        """Whether later runs retry it by themselves (the failure policy's row classes)."""
        return classify(None, self.error_code, self.error_message).retryable


def record(
    session: Session,
    rejections: Iterable[Rejection],
    when: dt.datetime,
    *,
    dag_id: str | None,
    run_id: str | None,
) -> int:
    """Keep each rejection: one row per (object, key), updated when rejected again; its
    `attempts` grow by the rejection's sends."""
    count = 0
    for rejection in rejections:
        letter = session.scalar(
            sa.select(DeadLetter).where(
                DeadLetter.object_name == rejection.object_name,
                DeadLetter.record_key == rejection.record_key,
            )
        )
        if letter is None:
            letter = DeadLetter(
                object_name=rejection.object_name,
                record_key=rejection.record_key,
                first_failed_at=when,
                attempts=0,
            )
            session.add(letter)
        letter.payload = rejection.payload
        letter.error_code = rejection.error_code
        letter.error_message = rejection.error_message
        letter.error_fields = rejection.error_fields
        letter.status = DeadLetterStatus.OPEN.value
        letter.attempts = (letter.attempts or 0) + rejection.sends
        letter.retryable = rejection.retryable and letter.attempts < MAX_AUTOMATIC_ATTEMPTS
        letter.last_failed_at = when
        letter.resolved_at = None
        letter.dag_id, letter.run_id = dag_id, run_id
        count += 1
    session.flush()
    return count


def resolve(
    session: Session,
    object_name: str,
    record_keys: Sequence[str],
    when: dt.datetime,
    sends: Mapping[str, int] | None = None,
) -> int:
    """Close the open letters of records that Salesforce has now accepted (upserted, or
    deleted); their `attempts` grow by the key's sends in this load (`sends`, default 1)."""
    by_sends: dict[int, list[str]] = defaultdict(list)
    for key in record_keys:
        by_sends[(sends or {}).get(key, 1)].append(key)
    closed = 0
    for count, same in sorted(by_sends.items()):
        for keys in chunked(same, IN_LIST_SIZE):
            result = session.execute(
                sa.update(DeadLetter)
                .where(
                    DeadLetter.object_name == object_name,
                    DeadLetter.record_key.in_(keys),
                    DeadLetter.status == DeadLetterStatus.OPEN.value,
                )
                .values(
                    status=DeadLetterStatus.RESOLVED.value,
                    resolved_at=when,
                    attempts=DeadLetter.attempts + count,
                )
            )
            closed += result.rowcount
    return closed


def open_letters(
    session: Session,
    *,
    retryable_only: bool,
    object_name: str | None = None,
    operation: str | None = UPSERT,
) -> list[DeadLetter]:
    """Open letters, oldest first: the automatic retry takes the retryable ones only.

    `operation` keeps upsert letters (the default: what ride-alongs and replays resubmit),
    or deletion letters (`DELETE`), or every letter (None).
    """
    query = sa.select(DeadLetter).where(DeadLetter.status == DeadLetterStatus.OPEN.value)
    if retryable_only:
        query = query.where(DeadLetter.retryable.is_(True))
    if object_name:
        query = query.where(DeadLetter.object_name == object_name)
    letters = session.scalars(query.order_by(DeadLetter.first_failed_at, DeadLetter.id))
    return [x for x in letters if operation is None or operation_of(x.payload) == operation]


def count_open(session: Session) -> dict[str, int]:
    """Open letters by error code (what the "dead letters present" check reports)."""
    rows = session.execute(
        sa.select(DeadLetter.error_code, sa.func.count())
        .where(DeadLetter.status == DeadLetterStatus.OPEN.value)
        .group_by(DeadLetter.error_code)
    )
    return dict(rows.all())


def resolve_obsolete(session: Session, reasons: dict[int, str], when: dt.datetime) -> int:
    """Close open letters (by id) whose row no longer exists, without resending them: the
    reason goes in front of the last error, so an operator reads both."""
    closed = 0
    for ids in chunked(sorted(reasons), IN_LIST_SIZE):
        letters = session.scalars(
            sa.select(DeadLetter).where(
                DeadLetter.id.in_(ids), DeadLetter.status == DeadLetterStatus.OPEN.value
            )
        )
        for letter in letters:
            letter.error_message = (
                f"obsolete, not resent ({reasons[letter.id]}); last error: {letter.error_message}"
            )
            letter.status = DeadLetterStatus.RESOLVED.value
            letter.resolved_at = when
            closed += 1
    session.flush()
    return closed
