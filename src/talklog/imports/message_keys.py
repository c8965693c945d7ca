"""Stable keys of exported messages: an export carries no message id.

`message_key` = `lwk:` + sha256(room, UTC minute, sender's stable id, type, text, file name,
occurrence). Everything in it survives a re-download of the same talks in another form:

- the time to the minute: a spreadsheet that re-saved the export dropped the seconds, and a
  download of another language or tool writes times differently;
- the sender as the store knows them (member kind and user id, resolved from the directory),
  never their display label: a customer who renamed themselves on LINE between two downloads
  is the same sender;
- the talk as stored (type, text, file name), so that migration 0004 can compute the key of a
  stored message from its columns alone;
- the occurrence: the n-th identical message (same room, minute, sender and talk) of a file
  gets occurrence n, so two identical messages of one minute stay two, while a re-import of
  the same rows conflicts on the key and is skipped. Downloads overlap by whole minutes
  (`talklog.ingest`), so every download numbers a minute's copies from its first.

Keys of the earlier scheme (`lwx:`, which hashed the sender's label and the time to the
second) are re-keyed by migration 0004 with `stored_message_key`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import OrderedDict

KEY_PREFIX = "lwk:"
LEGACY_PREFIX = "lwx:"  # the scheme before 0004: channel, second, sender label, raw talk
OCCURRENCE_WINDOW_MINUTES = 100_000  # distinct minutes whose identical-message counts are kept


def key_minute(sent_at: dt.datetime) -> dt.datetime:
    """The UTC minute a message is keyed by."""
    return sent_at.astimezone(dt.UTC).replace(second=0, microsecond=0)


class Occurrences:
    """Numbers identical messages of one minute: the n-th copy gets occurrence n.

    Counts are kept for the most recent distinct minutes (exports are in time order); a minute
    seen again after it was dropped is reported, since its copies could no longer be told apart.
    """

    def __init__(self, window: int = OCCURRENCE_WINDOW_MINUTES) -> None:
        self.window = window
        self.buckets: OrderedDict[dt.datetime, dict[bytes, int]] = OrderedDict()
        self.dropped: set[dt.datetime] = set()

    def next(self, minute: dt.datetime, digest: bytes) -> tuple[int, bool]:
        """(occurrence, exact): exact is False when the minute's counts had been dropped."""
        bucket = self.buckets.get(minute)
        if bucket is None:
            bucket = self.buckets[minute] = {}
            if len(self.buckets) > self.window:
                self.dropped.add(self.buckets.popitem(last=False)[0])
        else:
            self.buckets.move_to_end(minute)
        occurrence = bucket.get(digest, 0)
        bucket[digest] = occurrence + 1
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
    kind, user = sender
    fields = (room_id, key_minute(sent_at).isoformat(), kind, user, message_type)
    return "\x1f".join((*fields, text or "", file_name or "")).encode()


def message_key(content: bytes, occurrence: int) -> str:
    """The stable content hash of the `occurrence`-th copy of a message (0 for the first)."""
    return KEY_PREFIX + hashlib.sha256(content + b"\x1f%d" % occurrence).hexdigest()


class MessageKeys:
    """The keys of one file's (or one re-keyed store's) messages, in time order."""

    def __init__(self) -> None:
        self.occurrences = Occurrences()

    def key(
        self,
        room_id: str,
        sent_at: dt.datetime,
        sender: tuple[str, str],
        message_type: str,
        text: str | None,
        file_name: str | None,
    ) -> tuple[str, bool]:
        """(key, exact): exact is False when the minute's copies could not be numbered."""
        content = message_content(room_id, sent_at, sender, message_type, text, file_name)
        minute = key_minute(sent_at)
        occurrence, exact = self.occurrences.next(minute, hashlib.sha256(content).digest())
        return message_key(content, occurrence), exact
