"""Stable keys of exported messages: an export carries no message id.

`message_key` = `lwx:` + sha256(channel, UTC time, sender, talk, occurrence): the occurrence
numbers identical messages of one second within a file, so both are kept, while a re-import
of the same rows conflicts on the key and is skipped.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import OrderedDict

KEY_PREFIX = "lwx:"
OCCURRENCE_WINDOW_SECONDS = 100_000  # distinct seconds whose identical-message counts are kept


class Occurrences:
    """Numbers identical messages of one second: the n-th copy gets occurrence n.

    Counts are kept for the most recent distinct seconds (exports are in time order); a second
    seen again after it was dropped is reported, since its copies could no longer be told apart.
    """

    def __init__(self, window: int = OCCURRENCE_WINDOW_SECONDS) -> None:
        self.window = window
        self.buckets: OrderedDict[dt.datetime, dict[bytes, int]] = OrderedDict()
        self.dropped: set[dt.datetime] = set()

    def next(self, second: dt.datetime, digest: bytes) -> tuple[int, bool]:
        """(occurrence, exact): exact is False when the second's counts had been dropped."""
        bucket = self.buckets.get(second)
        if bucket is None:
            bucket = self.buckets[second] = {}
            if len(self.buckets) > self.window:
                self.dropped.add(self.buckets.popitem(last=False)[0])
        else:
            self.buckets.move_to_end(second)
        occurrence = bucket.get(digest, 0)
        bucket[digest] = occurrence + 1
        return occurrence, second not in self.dropped


def message_content(channel_id: str, sent_at: dt.datetime, sender: str, talk: str) -> bytes:
    """What identifies a message of an export: channel, UTC time, sender and talk."""
    stamp = sent_at.astimezone(dt.UTC).isoformat()
    return "\x1f".join((channel_id, stamp, sender, talk)).encode()


def message_key(content: bytes, occurrence: int) -> str:
    """The stable content hash of the `occurrence`-th copy of a message (0 for the first)."""
    return KEY_PREFIX + hashlib.sha256(content + b"\x1f%d" % occurrence).hexdigest()
