"""What is in a message store: rooms, members, links, messages per day and per type."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from talklog.store import display_url, make_engine
from talklog.store.models import (
    LineUser,
    LineWorksUser,
    Link,
    LinkPeriod,
    Message,
    MessageType,
    Room,
    RoomMember,
    TargetType,
)

MAX_DAYS_LISTED = 400  # beyond that, messages per day are not counted one day at a time


@dataclass(frozen=True)
class LinkCounts:
    linked: int = 0
    unlinked: int = 0

    @property
    def total(self) -> int:
        return self.linked + self.unlinked


@dataclass(frozen=True)
class StoreSummary:
    """Counts of everything a store holds; days are local days in `tz`."""

    url: str
    tz: str
    lw_users: int
    line_users: int
    rooms_by_type: dict[str, int]
    members_by_kind: dict[str, int]
    members_left: int
    links_by_target: dict[str, LinkCounts]
    link_periods: int
    messages_by_type: dict[str, int]
    messages_per_day: dict[dt.date, int]
    first_message: dt.datetime | None = None
    last_message: dt.datetime | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def rooms(self) -> int:
        return sum(self.rooms_by_type.values())

    @property
    def members(self) -> int:
        return sum(self.members_by_kind.values())

    @property
    def links(self) -> LinkCounts:
        counts = self.links_by_target.values()
        return LinkCounts(sum(c.linked for c in counts), sum(c.unlinked for c in counts))

    @property
    def messages(self) -> int:
        return sum(self.messages_by_type.values())

    def render(self) -> str:
        """A readable, multi-line text."""
        return render_summary(self)


def _grouped(conn: sa.Connection, column: sa.ColumnElement) -> dict[str, int]:
    query = sa.select(column, sa.func.count()).group_by(column).order_by(column)
    return {str(key): n for key, n in conn.execute(query).tuples()}


def _count(conn: sa.Connection, table: type, *where: sa.ColumnElement[bool]) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one()


def _links(conn: sa.Connection) -> dict[str, LinkCounts]:
    query = sa.select(Link.target_type, Link.linked, sa.func.count()).group_by(
        Link.target_type, Link.linked
    )
    found: dict[str, dict[bool, int]] = {}
    for target_type, linked, n in conn.execute(query).tuples():
        found.setdefault(target_type, {})[bool(linked)] = n
    order = [t.value for t in TargetType] + sorted(set(found) - {t.value for t in TargetType})
    return {
        t: LinkCounts(found[t].get(True, 0), found[t].get(False, 0)) for t in order if t in found
    }


def _per_day(
    conn: sa.Connection, first: dt.datetime, last: dt.datetime, zone: ZoneInfo
) -> dict[dt.date, int]:
    """Messages per local day, one indexed range count per day from the first to the last."""
    day, last_day = first.astimezone(zone).date(), last.astimezone(zone).date()
    if (last_day - day).days > MAX_DAYS_LISTED:
        return {}
    counts = {}
    while day <= last_day:
        begin = dt.datetime.combine(day, dt.time(), zone)
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone)
        counts[day] = _count(conn, Message, Message.sent_at >= begin, Message.sent_at < end)
        day += dt.timedelta(days=1)
    return counts


def describe_store(url: str, tz: str = "Asia/Tokyo") -> StoreSummary:
    """Count what the (migrated) store at `url` holds."""
    zone = ZoneInfo(tz)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            first, last = conn.execute(
                sa.select(sa.func.min(Message.sent_at), sa.func.max(Message.sent_at))
            ).one()
            notes = []
            per_day = _per_day(conn, first, last, zone) if first is not None else {}
            if first is not None and not per_day:
                notes.append(f"messages span more than {MAX_DAYS_LISTED} days: not listed by day")
            return StoreSummary(
                url=display_url(url),
                tz=tz,
                lw_users=_count(conn, LineWorksUser),
                line_users=_count(conn, LineUser),
                rooms_by_type=_grouped(conn, Room.room_type),
                members_by_kind=_grouped(conn, RoomMember.member_kind),
                members_left=_count(conn, RoomMember, RoomMember.left_at.is_not(None)),
                links_by_target=_links(conn),
                link_periods=_count(conn, LinkPeriod),
                messages_by_type=_ordered(
                    _grouped(conn, Message.message_type), [t.value for t in MessageType]
                ),
                messages_per_day=per_day,
                first_message=first,
                last_message=last,
                notes=notes,
            )
    finally:
        engine.dispose()


ROOM_LABELS = {"one_to_one": "1:1", "group": "group"}
MEMBER_LABELS = {"lw": "LW staff", "line": "LINE customers"}


def _ordered(counts: dict[str, int], known: list[str]) -> dict[str, int]:
    """Known keys in their order first, then the others by name."""
    order = [k for k in known if k in counts] + sorted(set(counts) - set(known))
    return {k: counts[k] for k in order}


def _parts(counts: dict[str, int], labels: dict[str, str]) -> str:
    ordered = _ordered(counts, list(labels))
    return ", ".join(f"{labels.get(k, k)} {n:,}" for k, n in ordered.items()) or "none"


def render_summary(summary: StoreSummary) -> str:
    """The summary as aligned text lines."""
    zone = ZoneInfo(summary.tz)
    links = summary.links
    lines = [
        f"Message store {summary.url}",
        f"  users:    {summary.lw_users:,} LW staff, {summary.line_users:,} LINE customers",
        f"  rooms:    {summary.rooms:,} ({_parts(summary.rooms_by_type, ROOM_LABELS)})",
        f"  members:  {summary.members:,} ({_parts(summary.members_by_kind, MEMBER_LABELS)};"
        f" {summary.members_left:,} left a room)",
        f"  links:    {links.total:,} ({links.linked:,} linked, {links.unlinked:,} unlinked;"
        f" {summary.link_periods:,} linked periods)",
    ]
    lines += [
        f"    {target:<18}{c.total:>8,}  ({c.linked:,} linked, {c.unlinked:,} unlinked)"
        for target, c in summary.links_by_target.items()
    ]
    lines.append(f"  messages: {summary.messages:,}")
    if summary.first_message is not None and summary.last_message is not None:
        first = summary.first_message.astimezone(zone).strftime("%Y-%m-%d %H:%M")
        last = summary.last_message.astimezone(zone).strftime("%Y-%m-%d %H:%M")
        lines.append(f"    from {first} to {last} ({summary.tz})")
    lines.append(f"    per day ({summary.tz}):")
    lines += [
        f"      {day.isoformat()} {day.strftime('%a')}{n:>10,}"
        for day, n in summary.messages_per_day.items()
    ]
    lines.append("    per type:")
    lines += [f"      {kind:<15}{n:>10,}" for kind, n in summary.messages_by_type.items()]
    lines += [f"  note: {note}" for note in summary.notes]
    return "\n".join(lines)
