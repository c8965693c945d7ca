"""Quarantine: rows the project could not read, decode or place, kept with key and reason.

A quarantined row stops nothing else: the rest of its window, file or page goes on. What is
kept says where the row is (`source` and `record_key`: a message key, an import file and
line) and what was wrong, never the row's content, so the table, the run summary and the
UI are safe to show. A row that a later run reads is resolved.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Session

from talklog.batching import IN_LIST_SIZE, chunked
from talklog.store.models import QuarantinedRow, QuarantineStatus


class Source(StrEnum):
    """Where a quarantined row was met."""

    STORE = "store"  # a message the store holds but cannot return or render
    IMPORT = "import"  # a row of an export file that cannot be stored
    DIRECTORY = "directory"  # a sender or recipient that cannot be matched to a person


@dataclass(frozen=True, slots=True)
class Quarantined:
    """One row put aside: where it is and why (`reason` never quotes its content)."""

    source: Source
    record_key: str
    reason_code: str
    reason: str


def record(
    session: Session, rows: Iterable[Quarantined], when: dt.datetime, *, run_id: str | None
) -> int:
    """Keep each row: one per (source, key), updated (`seen`, reason) when met again."""
    rows = list(rows)
    kept = _kept(session, rows)
    for row in rows:
        held = kept.get((row.source.value, row.record_key))
        if held is None:
            held = QuarantinedRow(
                source=row.source.value, record_key=row.record_key, first_seen_at=when, seen=0
            )
            session.add(held)
            kept[row.source.value, row.record_key] = held
        held.reason_code, held.reason = row.reason_code, row.reason
        held.status = QuarantineStatus.OPEN.value
        held.seen = (held.seen or 0) + 1
        held.last_seen_at, held.resolved_at, held.run_id = when, None, run_id
    return len(rows)


def _kept(session: Session, rows: list[Quarantined]) -> dict[tuple[str, str], QuarantinedRow]:
    """The stored rows of these (source, key) pairs, one query per source and chunk of keys."""
    keys: dict[str, set[str]] = {}
    for row in rows:
        keys.setdefault(row.source.value, set()).add(row.record_key)
    kept: dict[tuple[str, str], QuarantinedRow] = {}
    for source, source_keys in keys.items():
        for chunk in chunked(sorted(source_keys), IN_LIST_SIZE):
            query = sa.select(QuarantinedRow).where(
                QuarantinedRow.source == source, QuarantinedRow.record_key.in_(chunk)
            )
            kept.update(((r.source, r.record_key), r) for r in session.scalars(query))
    return kept


def resolve(session: Session, source: Source, keys: Iterable[str], when: dt.datetime) -> int:
    """Mark the open rows of `source` with these keys resolved (they were read after all)."""
    resolved = 0
    for chunk in chunked(sorted(set(keys)), IN_LIST_SIZE):
        result = session.execute(
            sa.update(QuarantinedRow)
            .where(
                QuarantinedRow.source == source.value,
                QuarantinedRow.record_key.in_(chunk),
                QuarantinedRow.status == QuarantineStatus.OPEN.value,
            )
            .values(status=QuarantineStatus.RESOLVED.value, resolved_at=when)
        )
        resolved += result.rowcount
    return resolved


def open_rows(session: Session, source: Source | None = None) -> list[QuarantinedRow]:
    """Open quarantined rows, oldest first (optionally of one source)."""
    query = sa.select(QuarantinedRow).where(QuarantinedRow.status == QuarantineStatus.OPEN.value)
    if source is not None:
        query = query.where(QuarantinedRow.source == source.value)
    return list(session.scalars(query.order_by(QuarantinedRow.first_seen_at, QuarantinedRow.id)))
