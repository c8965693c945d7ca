"""Store rows the corpus tests share: their window day and a linked 1:1 room.

``add_linked_room`` writes room ``n``'s staff member ``lw<n>``, customer ``U<n>``, the room,
both as members since the day before, and their link to a Salesforce target with a period in
force; the caller adds the messages.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from talklog.store.models import LineUser, LineWorksUser, Link, LinkPeriod, Room, RoomMember
from talklog.windows import TalkWindow

TOKYO = ZoneInfo("Asia/Tokyo")
WINDOW = TalkWindow(dt.datetime(2026, 1, 9, tzinfo=TOKYO), dt.datetime(2026, 1, 10, tzinfo=TOKYO))
BEFORE = WINDOW.start - dt.timedelta(days=1)


def add_linked_room(
    session: Session,
    n: int,
    *,
    room_id: str,
    title: str,
    target: tuple[str, str],
    link_key: str,
    names: tuple[str, str, str],
) -> None:
    """Room `n` linked to `target` (type, id); `names`: staff, customer, nickname."""
    staff_name, customer_name, nickname = names
    session.add_all(
        [
            LineWorksUser(id=f"lw{n}", display_name=staff_name),
            LineUser(id=f"U{n}", display_name=customer_name),
            Room(id=room_id, room_type="one_to_one", title=title, created_at=BEFORE),
        ]
    )
    session.flush()
    session.add_all(
        [
            RoomMember(room_id=room_id, member_kind="lw", lw_user_id=f"lw{n}", joined_at=BEFORE),
            RoomMember(room_id=room_id, member_kind="line", line_user_id=f"U{n}", joined_at=BEFORE),
        ]
    )
    link = Link(
        link_key=link_key, lw_user_id=f"lw{n}", line_user_id=f"U{n}",
        target_type=target[0], target_id=target[1], nickname=nickname,
        app_link=f"https://example.invalid/{n}", linked=True, linked_at=BEFORE, updated_at=BEFORE,
    )  # fmt: skip
    session.add(link)
    session.flush()
    session.add(LinkPeriod(link_id=link.id, started_at=BEFORE))
