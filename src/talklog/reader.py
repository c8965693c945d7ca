"""A big window's messages read in a second process, so that the database read and the
row conversion run on another core while this one claims and renders.

The parent starts `python -m talklog.reader` (`talklog.child_stream`), sends it the store URL
its caller gave (in Airflow, the store hook's) and the window, and reads batches of
`(room id, rows)` (`extract.window_rows`), which it turns into the lines `extract.window_lines`
would have given, in the same order.

The child reads committed messages through its own connection; the parent claims from
what it receives, so both sides agree on the lines even while an import adds messages.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterator
from typing import Any

import sqlalchemy as sa

from talklog.child_stream import Sender, child_stream, serve
from talklog.extract import talk_lines
from talklog.transcripts import TalkLine
from talklog.windows import TalkWindow

BATCH_LINES = 5_000  # lines per pickled batch (about 0.7 MB)


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
    url: str | sa.URL, window: TalkWindow, chunk_rows: int | None = None
) -> Generator[Iterator[tuple[str, list[TalkLine]]]]:
    """`extract.window_lines` of `window` in the store at `url`, read by a child process.

    The child starts at once (its query runs while the caller does other work) and is
    stopped when the block ends, whether or not every room was read.
    """
    store = sa.make_url(url).render_as_string(hide_password=False)
    with child_stream("talklog.reader", (store, window, chunk_rows), _reader_error) as batches:
        yield ((room_id, talk_lines(rows)) for batch in batches for room_id, rows in batch)


def _reader_error(why: str) -> ReaderProcessError:
    return ReaderProcessError(f"the message reader process {why}")


def _serve(request: tuple[str, TalkWindow, int | None], sender: Sender) -> None:
    """The child: stream the window's rooms in batches of about `BATCH_LINES` lines."""
    from talklog.extract import EXTRACT_CHUNK_ROWS, window_rows
    from talklog.store import make_engine

    url, window, chunk_rows = request
    engine = make_engine(url)
    try:
        with engine.connect() as connection, connection.begin():
            batch: list[tuple[str, list[tuple[Any, ...]]]] = []
            size = 0
            for room in window_rows(connection, window, chunk_rows or EXTRACT_CHUNK_ROWS):
                batch.append(room)
                size += len(room[1])
                if size >= BATCH_LINES:
                    sender.send(batch)
                    batch, size = [], 0
            sender.send(batch)
    finally:
        engine.dispose()


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
