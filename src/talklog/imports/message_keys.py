"""Stable keys of exported messages: an export carries no message id.

`message_key` = `lwt:` + the UTC minute (`YYYYmmddHHMM`) + `:` + sha256(room, UTC minute,
sender's stable id, type, text, file name, occurrence). Everything in it survives a
re-download of the same talks in another form:

- the time to the minute: a spreadsheet that re-saved the export dropped the seconds, and a
  download of another language or tool writes times differently;
- the sender as the store knows them (member kind and user id, resolved from the directory),
  never their display label: a customer who renamed themselves on LINE between two downloads
  is the same sender;
- the talk as stored (type, text, file name), so that a migration can compute the key of a
  stored message from its columns alone;
- the occurrence: the n-th identical message (same room, minute, sender and talk) of a file
  gets occurrence n, so two identical messages of one minute stay two, while a re-import of
  the same rows conflicts on the key and is skipped. Downloads overlap by whole minutes
  (`talklog.ingest`), so every download numbers a minute's copies from its first.

The minute in front keeps the unique index's inserts at its end (talks arrive in time
order): a window of a million messages is stored without rewriting the whole index at every
commit. Earlier schemes are re-keyed by migrations: `lwx:` (the sender's label, the time to
the second) by 0004, `lwk:` (0004's hash without the minute in front) by 0005.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import OrderedDict

KEY_PREFIX = "lwt:"
UNTIMED_PREFIX = "lwk:"  # 0004's scheme: the same hash, without the minute in front (0005)
LEGACY_PREFIX = "lwx:"  # the scheme before 0004: channel, second, sender label, raw talk
OCCURRENCE_ENTRIES = 200_000  # identical-message counts kept (the most recent minutes')


def key_minute(sent_at: dt.datetime) -> dt.datetime:
    """The UTC minute a message is keyed by."""
    return sent_at.astimezone(dt.UTC).replace(second=0, microsecond=0)


class Occurrences:
    """Numbers identical messages of one minute: the n-th copy gets occurrence n.

    Counts are kept for the most recent minutes, at most `entries` of them in all (memory
    stays flat however long the file; exports are in time order); a minute seen again after
    it was dropped is reported, since its copies could no longer be told apart.
    """

    def __init__(self, entries: int = OCCURRENCE_ENTRIES) -> None:
        self.entries = entries
        self.kept = 0
        self.buckets: OrderedDict[int, dict[bytes, int]] = OrderedDict()
        self.dropped: set[int] = set()

    def next(self, minute: int, digest: bytes) -> tuple[int, bool]:
        """(occurrence, exact) in the minute (`minute`: minutes since the epoch); exact is
        False when the minute's counts had been dropped."""
        bucket = self.buckets.get(minute)
        if bucket is None:
            bucket = self.buckets[minute] = {}
        elif next(reversed(self.buckets)) != minute:
            self.buckets.move_to_end(minute)
        occurrence = bucket.get(digest, 0)
        bucket[digest] = occurrence + 1
        if not occurrence:
            self.kept += 1
            while self.kept > self.entries and len(self.buckets) > 1:
                oldest, counts = self.buckets.popitem(last=False)
                self.kept -= len(counts)
                self.dropped.add(oldest)
        return occurrence, minute not in self.dropped


def message_content(
    room_id: str,
    sent_at: dt.datetime,
    sender: tuple[str, str],
    message_type: str,
    text: str | None,
    file_name: str | None,
) -> bytes:
    """What identifies a message: room, UTC minute, sender (kind, id) and the talk as stored."""
    minute = _minute_text(key_minute(sent_at))
    return _content(room_id, minute, sender, message_type, text, file_name)


def _content(
    room_id: str,
    minute: str,
    sender: tuple[str, str],
    message_type: str,
    text: str | None,
    file_name: str | None,
) -> bytes:
    kind, user = sender
    fields = (room_id, minute, kind, user, message_type, text or "", file_name or "")
    return "\x1f".join(fields).encode()


def _minute_text(minute: dt.datetime) -> str:
    return minute.isoformat()


def key_prefix(sent_at: dt.datetime) -> str:
    """`lwt:` and the message's UTC minute: what every key of that minute starts with."""
    return f"{KEY_PREFIX}{key_minute(sent_at):%Y%m%d%H%M}:"


def message_key(sent_at: dt.datetime, content: bytes, occurrence: int) -> str:
    """The stable key of the `occurrence`-th copy (0 for the first) of a message sent at
    `sent_at` whose `message_content` is `content`."""
    return key_prefix(sent_at) + hashlib.sha256(content + b"\x1f%d" % occurrence).hexdigest()


class MessageKeys:
    """The keys of one file's (or one re-keyed store's) messages, in time order."""

    def __init__(self) -> None:
        self.occurrences = Occurrences()
        self.minutes: dict[int, tuple[str, str]] = {}  # minutes since the epoch -> (as
        # hashed, the key's prefix), bounded

    def key(
        self,
        room_id: str,
        sent_at: dt.datetime,
        sender: tuple[str, str],
        message_type: str,
        text: str | None,
        file_name: str | None,
    ) -> tuple[str, bool]:
        """(key, exact): exact is False when the minute's copies could not be numbered.
        Equals `message_key(sent_at, message_content(...), occurrence)`."""
        minute = int(sent_at.timestamp()) // 60
        texts = self.minutes.get(minute)
        if texts is None:
            if len(self.minutes) >= _MINUTES_KEPT:
                self.minutes.clear()
            texts = (_minute_text(key_minute(sent_at)), key_prefix(sent_at))
            self.minutes[minute] = texts
        content = _content(room_id, texts[0], sender, message_type, text, file_name)
        digest = hashlib.sha256(content)
        occurrence, exact = self.occurrences.next(minute, digest.digest()[:16])
        digest.update(b"\x1f%d" % occurrence)  # = sha256(content + occurrence)
        return texts[1] + digest.hexdigest(), exact


_MINUTES_KEPT = 10_000
