"""Message store: the talks, rooms, members and links written by the LINE WORKS side,
plus the project's own bookkeeping (delivery ledger, dead letters, watermarks).

The same models run on SQLite and PostgreSQL; times are always stored in UTC.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from talklog.store.engine import dialect_of

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SALESFORCE_ID = sa.String(18)
LINE_ID = sa.String(64)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware timestamp stored as UTC on every backend.

    Naive datetimes are refused: a time without a zone is ambiguous and would
    silently move a message into another talk window.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime refused by the message store: {value!r}")
        utc = value.astimezone(dt.UTC)
        return utc.replace(tzinfo=None) if dialect_of(dialect) == "sqlite" else utc

    def result_processor(self, dialect: sa.Dialect, coltype: Any) -> Any:
        """SQLite keeps ISO text: parse it in one C call per value (windows read millions)."""
        if dialect_of(dialect) != "sqlite":
            return super().result_processor(dialect, coltype)
        return utc_from_db

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> dt.datetime | None:
        return utc_from_db(value)


# The text SQLAlchemy writes for a timestamp on SQLite (`YYYY-MM-DD HH:MM:SS[.ffffff]`, naive
# UTC): its lengths, the separator at index 10, and what makes it an aware UTC time for
# `datetime.fromisoformat`, one C call (`extract.talk_lines` checks whole columns of it).
WRITTEN_TIME_LENGTHS = frozenset({19, 26})
WRITTEN_TIME_SEPARATOR = (10, " ")
UTC_SUFFIX = "+00:00"


def utc_from_db(value: str | dt.datetime | None) -> dt.datetime | None:
    """A stored timestamp as an aware UTC datetime: SQLite's naive UTC text or a driver's
    datetime. The text SQLAlchemy writes (`WRITTEN_TIME_LENGTHS`) takes one C call."""
    if value is None:
        return None
    if isinstance(value, str):
        at, separator = WRITTEN_TIME_SEPARATOR
        if len(value) in WRITTEN_TIME_LENGTHS and value[at] == separator:  # as written: UTC
            return dt.datetime.fromisoformat(value + UTC_SUFFIX)
        value = dt.datetime.fromisoformat(value)  # any other ISO text (naive is UTC)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class RoomType(enum.StrEnum):
    ONE_TO_ONE = "one_to_one"
    GROUP = "group"


class MemberKind(enum.StrEnum):
    LW = "lw"  # LINE WORKS staff user
    LINE = "line"  # LINE customer


class MessageType(enum.StrEnum):
    TEXT = "text"
    IMAGE = "image"
    FILE = "file"
    STICKER = "sticker"
    LOCATION = "location"
    AUDIO = "audio"
    VIDEO = "video"


class TargetType(enum.StrEnum):
    """The kind of Salesforce record a LW user linked a LINE user to."""

    EXTERNAL_CONTACT = "external_contact"
    LEAD = "lead"
    CONTACT = "contact"
    PERSON_ACCOUNT = "person_account"


class DeadLetterStatus(enum.StrEnum):
    OPEN = "open"  # waiting: retried automatically when retryable, else replayed by an operator
    RESOLVED = "resolved"  # a later load succeeded


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


def _enum_check(column: str, values: type[enum.StrEnum]) -> sa.CheckConstraint:
    allowed = ", ".join(f"'{v.value}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({allowed})", name=f"{column}_valid")


class LineWorksUser(Base):
    """A sales staff member on LINE WORKS."""

    __tablename__ = "lw_users"

    id: Mapped[str] = mapped_column(LINE_ID, primary_key=True)
    display_name: Mapped[str] = mapped_column(sa.String(255))
    salesforce_user_id: Mapped[str | None] = mapped_column(SALESFORCE_ID)
    # The login id (`name(account@domain)` in exports), from the directory sync (0004).
    email: Mapped[str | None] = mapped_column(sa.String(255), index=True)


class LineUser(Base):
    """A customer on LINE, known to LINE WORKS as an external contact."""

    __tablename__ = "line_users"

    id: Mapped[str] = mapped_column(LINE_ID, primary_key=True)
    display_name: Mapped[str] = mapped_column(sa.String(255))
    contact_uuid: Mapped[str | None] = mapped_column(LINE_ID, unique=True)


class LineContact(Base):
    """An address-book entry of a staff member for a LINE user (LINE WORKS `/contacts`).

    The same LINE user in two staff members' books is two contacts, each with its master.
    `master_lw_user_id` is deliberately not a foreign key: a contact may name a member the
    directory no longer lists.
    """

    __tablename__ = "line_contacts"
    __table_args__ = (sa.Index("ix_line_contacts_line_user", "line_user_id"),)

    contact_id: Mapped[str] = mapped_column(LINE_ID, primary_key=True)
    line_user_id: Mapped[str] = mapped_column(sa.ForeignKey("line_users.id"))
    master_lw_user_id: Mapped[str | None] = mapped_column(LINE_ID)
    display_name: Mapped[str] = mapped_column(sa.String(255))
    modified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class CoverageSource(enum.StrEnum):
    """Where the talks of an ingested time range came from."""

    LINEWORKS = "lineworks"  # a Monitoring API download (`talklog.ingest`)
    IMPORT = "import"  # an export file (`talklog import`)


class CoveredRange(Base):
    """A time range [range_start, range_end) whose talks are in the store completely."""

    __tablename__ = "coverage"
    __table_args__ = (
        _enum_check("source", CoverageSource),
        sa.Index("ix_coverage_range", "range_start", "range_end"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(sa.String(32))
    range_start: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    range_end: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    run_id: Mapped[str | None] = mapped_column(sa.String(255))
    detail: Mapped[str | None] = mapped_column(sa.String(255))  # a file name, never content


class Room(Base):
    """A talk room (1:1 or group). Adding a LINE user to a room creates a new room."""

    __tablename__ = "rooms"
    __table_args__ = (_enum_check("room_type", RoomType),)

    id: Mapped[str] = mapped_column(LINE_ID, primary_key=True)
    room_type: Mapped[str] = mapped_column(sa.String(16))
    title: Mapped[str | None] = mapped_column(sa.String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    members: Mapped[list[RoomMember]] = relationship(back_populates="room")


class RoomMember(Base):
    """Membership of a staff user or a customer in a room over [joined_at, left_at)."""

    __tablename__ = "room_members"
    __table_args__ = (
        _enum_check("member_kind", MemberKind),
        sa.CheckConstraint(
            "(member_kind = 'lw' AND lw_user_id IS NOT NULL AND line_user_id IS NULL)"
            " OR (member_kind = 'line' AND line_user_id IS NOT NULL AND lw_user_id IS NULL)",
            name="one_member",
        ),
        sa.Index("ix_room_members_room", "room_id", "joined_at"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    room_id: Mapped[str] = mapped_column(sa.ForeignKey("rooms.id", ondelete="CASCADE"))
    member_kind: Mapped[str] = mapped_column(sa.String(8))
    lw_user_id: Mapped[str | None] = mapped_column(sa.ForeignKey("lw_users.id"))
    line_user_id: Mapped[str | None] = mapped_column(sa.ForeignKey("line_users.id"))
    joined_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    left_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    room: Mapped[Room] = relationship(back_populates="members")


class Message(Base):
    """One message of a talk.

    `message_key` is the source's message id, or a content hash for exports that have none;
    it is unique so that a re-import cannot duplicate a message. `message_type` is kept as
    the source wrote it: unknown types are rendered as placeholders, not refused.
    """

    __tablename__ = "messages"
    __table_args__ = (
        _enum_check("sender_kind", MemberKind),
        sa.CheckConstraint(
            "(sender_kind = 'lw' AND sender_lw_user_id IS NOT NULL AND sender_line_user_id IS NULL)"
            " OR (sender_kind = 'line' AND sender_line_user_id IS NOT NULL"
            " AND sender_lw_user_id IS NULL)",
            name="one_sender",
        ),
        # The hot query: the messages of a time window, by room.
        sa.Index("ix_messages_window", "sent_at", "room_id"),
        sa.Index("ix_messages_room_sent", "room_id", "sent_at"),
    )

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    message_key: Mapped[str] = mapped_column(sa.String(128), unique=True)
    room_id: Mapped[str] = mapped_column(sa.ForeignKey("rooms.id", ondelete="CASCADE"))
    sent_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    sender_kind: Mapped[str] = mapped_column(sa.String(8))
    sender_lw_user_id: Mapped[str | None] = mapped_column(sa.ForeignKey("lw_users.id"))
    sender_line_user_id: Mapped[str | None] = mapped_column(sa.ForeignKey("line_users.id"))
    message_type: Mapped[str] = mapped_column(sa.String(32), default=MessageType.TEXT.value)
    text: Mapped[str | None] = mapped_column(sa.Text)
    file_name: Mapped[str | None] = mapped_column(sa.String(512))
    file_size: Mapped[int | None] = mapped_column(sa.BigInteger)


class Link(Base):
    """A LW user's link of a LINE user to a Salesforce record: one row per (LW user, LINE user).

    The row holds the current state (what `LineWorks__c` mirrors); `LinkPeriod` rows hold the
    history of when the link was in force, so that a message is delivered only through a link
    that was active when it was sent.
    """

    __tablename__ = "links"
    __table_args__ = (
        _enum_check("target_type", TargetType),
        sa.UniqueConstraint("lw_user_id", "line_user_id"),
        sa.Index("ix_links_updated_at", "updated_at"),
        sa.Index("ix_links_line_user", "line_user_id"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    link_key: Mapped[str] = mapped_column(sa.String(255), unique=True)
    lw_user_id: Mapped[str] = mapped_column(sa.ForeignKey("lw_users.id"))
    line_user_id: Mapped[str] = mapped_column(sa.ForeignKey("line_users.id"))
    target_type: Mapped[str] = mapped_column(sa.String(32))
    target_id: Mapped[str] = mapped_column(SALESFORCE_ID)
    nickname: Mapped[str | None] = mapped_column(sa.String(255))
    app_link: Mapped[str | None] = mapped_column(sa.String(1024))
    linked: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    linked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    unlinked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    periods: Mapped[list[LinkPeriod]] = relationship(
        back_populates="link", order_by="LinkPeriod.started_at"
    )


class LinkPeriod(Base):
    """A span [started_at, ended_at) during which a link was in force (ended_at NULL: still)."""

    __tablename__ = "link_periods"
    __table_args__ = (sa.Index("ix_link_periods_link", "link_id", "started_at"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    link_id: Mapped[int] = mapped_column(sa.ForeignKey("links.id", ondelete="CASCADE"))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    link: Mapped[Link] = relationship(back_populates="periods")


class TalkLogClaim(Base):
    """Delivery ledger, per TalkLog: the (room, window, record) transcript a window claimed
    message pairs for, and whether Salesforce accepted it (`delivered_at`, its first Task)."""

    __tablename__ = "talklog_claims"
    __table_args__ = (sa.Index("ix_talklog_claims_room", "room_id", "window_start"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    talklog_key: Mapped[str] = mapped_column(sa.String(255), unique=True)
    room_id: Mapped[str] = mapped_column(LINE_ID)
    target_record_id: Mapped[str | None] = mapped_column(SALESFORCE_ID)
    window_start: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    window_end: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    run_id: Mapped[str | None] = mapped_column(sa.String(255))
    task_key: Mapped[str | None] = mapped_column(sa.String(255))
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Parts Salesforce last accepted (None: written before 0003, not known): a re-run that
    # writes fewer removes the extra ones, so Salesforce holds what a first run would.
    talklog_parts: Mapped[int | None] = mapped_column(sa.Integer)
    task_parts: Mapped[int | None] = mapped_column(sa.Integer)


class Delivery(Base):
    """Delivery ledger, per message: which message reaches which customer, in which TalkLog.

    The primary key (customer, message) makes "each message reaches each customer once" a
    database guarantee, whatever schedule, backfill or retry wrote it; customer first, so a
    claim's pairs (a room's messages, customer by customer, in time order) go in side by side
    (store revision 0007). Pairs are found by TalkLog (`ix_deliveries_talklog`), and a
    message's through its room's TalkLogs (`talklog.ledger.message_entries`). `customer_key` is the
    stable identity of the receiving customer (it survives lead conversion and re-links).
    A row holds three narrow columns (a window claims about one per message) and, on SQLite,
    lives in its primary key's B-tree only (WITHOUT ROWID); the TalkLog's own columns are in
    `talklog_claims`. Neither `message_id` nor `talklog_id` is a foreign key: pairs are built
    from messages read and TalkLogs registered in the same transaction, and checking each
    pair against the messages table took more than half of a million-pair claim on SQLite,
    against `talklog_claims` a quarter (store revisions 0002 and 0006).
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        sa.PrimaryKeyConstraint("customer_key", "message_id"),
        sa.Index("ix_deliveries_talklog", "talklog_id", "message_id"),
        {"sqlite_with_rowid": False},
    )

    message_id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), autoincrement=False
    )
    customer_key: Mapped[str] = mapped_column(sa.String(255))
    talklog_id: Mapped[int] = mapped_column(sa.Integer)  # talklog_claims.id


class DeadLetter(Base):
    """A record Salesforce rejected, kept with its error until a later load succeeds.

    One row per (object, record key): a rejected record that is rejected again updates its
    row (attempts, last error) instead of piling up copies.
    """

    __tablename__ = "dead_letters"
    __table_args__ = (
        _enum_check("status", DeadLetterStatus),
        sa.UniqueConstraint("object_name", "record_key"),
        sa.Index("ix_dead_letters_status", "status", "retryable"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    object_name: Mapped[str] = mapped_column(sa.String(64))
    record_key: Mapped[str] = mapped_column(sa.String(255))
    payload: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    error_code: Mapped[str] = mapped_column(sa.String(64))
    error_message: Mapped[str] = mapped_column(sa.Text)
    error_fields: Mapped[str | None] = mapped_column(sa.String(512))
    retryable: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    status: Mapped[str] = mapped_column(sa.String(16), default=DeadLetterStatus.OPEN.value)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=1)
    first_failed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_failed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    dag_id: Mapped[str | None] = mapped_column(sa.String(255))
    run_id: Mapped[str | None] = mapped_column(sa.String(255))


class QuarantineStatus(enum.StrEnum):
    OPEN = "open"  # waiting for a person (or a fixed source) to make it readable
    RESOLVED = "resolved"  # a later run read it


class QuarantinedRow(Base):
    """A row the project could not read, decode or place, kept with its key and reason.

    It never holds the row's content: only where it is (`source`, `record_key`: a message
    key, an import file and line) and what was wrong. One row per (source, key); a row
    quarantined again updates `last_seen_at` and `seen`.
    """

    __tablename__ = "quarantine"
    __table_args__ = (
        _enum_check("status", QuarantineStatus),
        sa.UniqueConstraint("source", "record_key"),
        sa.Index("ix_quarantine_status", "status"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(sa.String(32))  # "store", "import", "directory"
    record_key: Mapped[str] = mapped_column(sa.String(255))
    reason_code: Mapped[str] = mapped_column(sa.String(64))
    reason: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(16), default=QuarantineStatus.OPEN.value)
    seen: Mapped[int] = mapped_column(sa.Integer, default=1)
    first_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    run_id: Mapped[str | None] = mapped_column(sa.String(255))


class Watermark(Base):
    """A named high-water mark kept by the project (e.g. the last link change synced)."""

    __tablename__ = "watermarks"

    name: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    value: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
