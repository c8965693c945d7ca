"""Where did a message go, and why not? Lookups for operators (no message content shown)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from talklog import ledger
from talklog.store.models import DeadLetter, Delivery, Message, TalkLogClaim


def trace_message(session: Session, message_key: str) -> list[str]:
    """Each customer a message was claimed for, the TalkLog it went into, and its state."""
    message = session.scalar(sa.select(Message).where(Message.message_key == message_key))
    if message is None:
        return [f"message {message_key!r}: not in the store"]
    lines = [
        f"message {message_key!r}: room {message.room_id}, sent {message.sent_at:%Y-%m-%d %H:%M:%S}"
        f" UTC, type {message.message_type}"
    ]
    deliveries = ledger.message_entries(session, message)
    if not deliveries:
        lines.append("  not claimed by any window: no linked customer, or its window has not run")
    for delivery in deliveries:
        lines.extend(_delivery_lines(session, delivery))
    return lines


def trace_record(session: Session, record_key: str) -> list[str]:
    """A TalkLog/Task/LineWorks key (or a TalkLog key without its part): deliveries and letters."""
    base = record_key.removeprefix("log|")
    base = base.rsplit("|", 1)[0] if base.count("|") >= 3 else base
    claim = session.scalar(sa.select(TalkLogClaim).where(TalkLogClaim.talklog_key == base))
    count = _pair_count(session, claim) if claim else 0
    delivered = count if claim and claim.delivered_at else 0
    lines = [f"{record_key!r}: {count} (message, customer) pairs, {delivered} delivered"]
    lines.extend(_letter_lines(session, record_key, base))
    return lines


def _pair_count(session: Session, claim: TalkLogClaim) -> int:
    """Pairs of one TalkLog, found through its room's messages in its window (indexed)."""
    query = (
        sa.select(sa.func.count())
        .select_from(Message)
        .join(Delivery, Delivery.message_id == Message.id)
        .where(
            Message.room_id == claim.room_id,
            Message.sent_at >= claim.window_start,
            Message.sent_at < claim.window_end,
            Delivery.talklog_id == claim.id,
        )
    )
    return session.scalar(query) or 0


def _delivery_lines(session: Session, delivery: ledger.LedgerEntry) -> list[str]:
    state = (
        f"delivered {delivery.delivered_at:%Y-%m-%d %H:%M} UTC"
        if delivery.delivered_at
        else "claimed, not yet accepted by Salesforce"
    )
    lines = [
        f"  customer {delivery.customer_key} -> record {delivery.target_record_id}:"
        f" TalkLog {delivery.talklog_key} (run {delivery.run_id}), {state}"
    ]
    lines.extend(_letter_lines(session, delivery.talklog_key, delivery.talklog_key))
    return lines


def _letter_lines(session: Session, record_key: str, base: str) -> list[str]:
    letters = session.scalars(
        sa.select(DeadLetter)
        .where(
            sa.or_(
                DeadLetter.record_key == record_key,
                DeadLetter.record_key.like(f"{_escape_like(base)}|%", escape="\\"),
                DeadLetter.record_key.like(f"log|{_escape_like(base)}|%", escape="\\"),
            )
        )
        .order_by(DeadLetter.object_name, DeadLetter.record_key)
    ).all()
    return [
        f"    {letter.object_name} {letter.record_key}: {letter.status}, {letter.error_code}:"
        f" {letter.error_message[:120]} (attempts {letter.attempts},"
        f" last {letter.last_failed_at:%Y-%m-%d %H:%M} UTC)"
        for letter in letters
    ]


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
