"""A big window's messages read in a second process, so that the database read, the
row conversion and the rendering of each line run on another core while this one claims
and builds the transcripts.

The parent starts `python -m talklog.reader` (`talklog.child_stream`), sends it the store URL
its caller gave (in Airflow, the store hook's), the window and the time zone, and reads
batches of `(room id, columns, rendered lines)` (`extract.window_rows`, marshalled when plain),
which it turns into the rooms `extract.window_lines` would have given, in the same order,
with each room's lines as `transcripts.render_lines` renders them (None for a room with a
line that cannot be rendered: the parent screens it, and quarantines that line). A room the
child rendered comes with its lines' ids and times only: its rendering holds the rest, and
its lines' other fields are None (`_content_left_out`), so its lines must not be rendered
again (the pipeline never does: it renders a room only when no rendering came with it).

The child reads committed messages through its own connection; the parent claims from
what it receives, so both sides agree on the lines even while an import adds messages.
"""

from __future__ import annotations

import contextlib
import functools
import marshal
from collections.abc import Generator, Iterator
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from talklog.child_stream import Sender, child_stream, serve
from talklog.extract import Columns, talk_lines
from talklog.transcripts import TalkLine, render_lines
from talklog.windows import TalkWindow

BATCH_LINES = 5_000  # lines per batch (about 0.7 MB)
RENDER_WHEN_WAITING = 2  # batches waiting for the parent from which this process renders
RoomRows = list[tuple[str, Columns, dict[int, str] | None]]
"""(room id, its columns as `extract.window_rows` reads them, its lines rendered or None);
a rendered room's columns are its ids and times only."""


class ReaderProcessError(RuntimeError):
    """The message reader process failed; the window is not written (re-run it)."""


def can_read_in_child(url: str | sa.URL) -> bool:
    """A second process sees the same store (not an in-memory SQLite database)."""
    url = sa.make_url(url)
    if url.get_backend_name() != "sqlite":
        return True
    return url.database not in (None, "", ":memory:") and "mode=memory" not in str(url)


@contextlib.contextmanager
def window_lines_in_child(
    url: str | sa.URL,
    window: TalkWindow,
    chunk_rows: int | None = None,
    zone: str | None = None,
    render_when_waiting: int | None = None,
) -> Generator[Iterator[tuple[str, list[TalkLine], dict[int, str] | None]]]:
    """`extract.window_lines` of `window` in the store at `url`, read by a child process,
    each room with its lines rendered in `zone` by the child (`transcripts.render_lines`:
    message id -> line) when at least `render_when_waiting` (default `RENDER_WHEN_WAITING`)
    batches wait for this process, else None (no `zone`, the child was not ahead, or a line
    of the room cannot be rendered: the caller renders and screens that room itself). The
    lines of a rendered room hold their ids and times only (the rest None).

    The child starts at once (its query runs while the caller does other work) and is
    stopped when the block ends, whether or not every room was read.
    """
    store = sa.make_url(url).render_as_string(hide_password=False)
    waiting = RENDER_WHEN_WAITING if render_when_waiting is None else render_when_waiting
    request = (store, window, chunk_rows, zone, waiting)
    with child_stream("talklog.reader", request, _reader_error) as batches:
        yield (
            (room_id, talk_lines(_content_left_out(columns, rendered)), rendered)
            for batch in batches
            for room_id, columns, rendered in _rooms(batch)
        )


_TIMED = TalkLine._fields.index("sent_at") + 1  # a line's first fields: message id, time


def _content_left_out(columns: Columns, rendered: dict[int, str] | None) -> Columns:
    """A rendered room's ids and times (`_with_lines_rendered`) with None for every other
    field; any other room's columns as they are."""
    if rendered is None:
        return columns
    absent = len(TalkLine._fields) - _TIMED
    return [*columns[:_TIMED], *([(None,) * len(columns[0])] * absent)]


def _rooms(batch: bytes | RoomRows) -> RoomRows:
    """A batch as the child sent it: marshalled when it could be (`_packed`)."""
    return marshal.loads(batch) if isinstance(batch, bytes) else batch


def _packed(batch: RoomRows) -> bytes | RoomRows:
    """`marshal` bytes of a batch whose values are all plain (SQLite's str, int, float, bytes,
    None): it writes and reads them several times faster than pickle (1M messages: about
    1.5 s less in the child, 0.5 s less here). A batch holding a driver's own types
    (PostgreSQL's datetimes) goes as it is (child_stream pickles it)."""
    try:
        return marshal.dumps(batch)
    except ValueError:
        return batch


def _rendered(columns: Columns, zone: str) -> dict[int, str] | None:
    """A room's lines rendered here (another core than the caller's), when all can be."""
    rendered, refused = render_lines(talk_lines(columns), _zone(zone))
    return None if refused else rendered


@functools.cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _reader_error(why: str) -> ReaderProcessError:
    return ReaderProcessError(f"the message reader process {why}")


def _serve(request: tuple[str, TalkWindow, int | None, str | None, int], sender: Sender) -> None:
    """The child: stream the window's rooms in batches of about `BATCH_LINES` lines."""
    from talklog.extract import EXTRACT_CHUNK_ROWS, window_rows
    from talklog.store import make_engine

    url, window, chunk_rows, zone, render_when_waiting = request
    ahead = _Ahead(sender, None if zone is None else render_when_waiting)
    engine = make_engine(url)
    try:
        with engine.connect() as connection, connection.begin():
            batch: list[tuple[str, Columns]] = []
            size, values = 0, {}
            for room_id, columns in window_rows(
                connection, window, chunk_rows or EXTRACT_CHUNK_ROWS
            ):
                batch.append((room_id, columns))
                size += len(columns[0])
                if size >= BATCH_LINES:
                    sender.send(_packed(_with_lines_rendered(batch, zone, ahead, values)))
                    batch, size = [], 0
            sender.send(_packed(_with_lines_rendered(batch, zone, ahead, values)))
    finally:
        engine.dispose()


_FEW_VALUED = tuple(TalkLine._fields.index(name) for name in ("speaker_kind", "message_type"))


def _shared(columns: Columns, values: dict[Any, Any]) -> Columns:
    """The columns with every repeated value of the few-valued ones (speaker kind, message
    type; speakers' names are shared already, see `extract.Speakers`) as one object (`values`:
    the ones seen so far): marshal then writes it once and the parent makes it once (a room
    sent whole; before rendered rooms went as ids and times, 1M messages: about 0.4 s less
    there, 15 MB less sent)."""
    shared = list(columns)
    for index in _FEW_VALUED:
        shared[index] = tuple(map(values.setdefault, shared[index], shared[index]))
    return shared


class _Ahead:
    """Whether this process is ahead of the parent: at least `waiting` batches wait for it
    (None: never)."""

    def __init__(self, sender: Sender, waiting: int | None) -> None:
        self.sender = sender
        self.waiting = waiting

    def __bool__(self) -> bool:
        return self.waiting is not None and self.sender.blobs.qsize() >= self.waiting


def _with_lines_rendered(
    batch: list[tuple[str, Columns]], zone: str | None, ahead: _Ahead, values: dict[Any, Any]
) -> RoomRows:
    """The batch's rooms with their lines rendered here while this process is ahead of the
    parent (batches wait for it: this process would soon wait too), else left to the parent:
    the rendering goes to whichever core has time. The lines are the same whoever renders
    them. A rendered room goes with its ids and times only (the parent needs no more of it:
    1M messages, about 100 MB less marshalled and 0.7 s less to read there); a room sent
    whole with its few-valued columns shared (`_shared`, `values`)."""
    if zone is None or not ahead:
        return [(room_id, _shared(columns, values), None) for room_id, columns in batch]
    rooms: RoomRows = []
    for room_id, columns in batch:
        rendered = _rendered(columns, zone)
        sent = _shared(columns, values) if rendered is None else columns[:_TIMED]
        rooms.append((room_id, sent, rendered))
    return rooms


def _describe(exc: Exception) -> str:
    # The class and the database's message only: row values never leave the process (and a
    # message that would quote one is not sent).
    from talklog.store.engine import is_undecodable_text

    reason = getattr(exc, "orig", None) or exc
    first_line = (str(reason).splitlines() or [""])[0]
    if is_undecodable_text(exc):
        first_line = "a text value is not valid UTF-8"
    return f"{type(exc).__name__}: {first_line}"


def main() -> None:
    serve(_serve, _describe)


if __name__ == "__main__":
    main()
