"""A big window's messages read in a second process, so that the database read and the
row conversion run on another core while this one claims and renders.

The parent starts `python -m talklog.reader`, sends it the store URL its caller gave (in
Airflow, the store hook's) and the window on stdin (never on the command line or in a log:
the URL may hold a password) and reads pickled batches of `(room id, rows)`
(`extract.window_rows`) from its stdout, which it turns into the lines
`extract.window_lines` would have given, in the same order. At most a few batches wait in
the child's queue and the pipe, so memory stays bounded whichever side is faster.

The child reads committed messages through its own connection; the parent claims from
what it receives, so both sides agree on the lines even while an import adds messages.
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import queue
import subprocess
import sys
import threading
from collections.abc import Generator, Iterator
from typing import Any, BinaryIO

import sqlalchemy as sa

from talklog.extract import talk_lines
from talklog.transcripts import TalkLine
from talklog.windows import TalkWindow

BATCH_LINES = 5_000  # lines per pickled batch (about 0.7 MB)
PIPE_BYTES = 1 << 20  # Linux's default ceiling for an unprivileged process
_ROOMS, _DONE, _FAILED = "rooms", "done", "failed"


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
    child = subprocess.Popen(
        [sys.executable, "-m", "talklog.reader"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)},
    )
    _widen_pipe(child.stdout)
    try:
        store = sa.make_url(url).render_as_string(hide_password=False)
        pickle.dump((store, window, chunk_rows), child.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        child.stdin.close()
        yield _batches(child)
    finally:
        _stop(child)


def _widen_pipe(pipe: BinaryIO) -> None:
    """Let the pipe hold a few batches (Linux; elsewhere it keeps its size)."""
    with contextlib.suppress(AttributeError, OSError):
        import fcntl

        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def _batches(child: subprocess.Popen[bytes]) -> Iterator[tuple[str, list[TalkLine]]]:
    while True:
        try:
            kind, payload = pickle.load(child.stdout)
        except EOFError:
            child.wait()
            raise ReaderProcessError(
                f"the message reader process ended early (exit code {child.returncode})"
            ) from None
        if kind == _ROOMS:
            for room_id, rows in payload:
                yield room_id, talk_lines(rows)
        elif kind == _DONE:
            return
        else:
            raise ReaderProcessError(f"the message reader process failed: {payload}")


def _stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.kill()
    child.wait()
    child.stdout.close()


class _Sender:
    """Pickles batches in the reading thread and writes them from another, so that the next
    rows are read from the database while the parent is still taking the last batch (a
    pipe holds only 64 KiB); at most `depth` batches wait."""

    def __init__(self, out: BinaryIO, depth: int = 8) -> None:
        self.out = out
        self.blobs: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self.error: OSError | None = None
        self.writer = threading.Thread(target=self._write, daemon=True)
        self.writer.start()

    def _write(self) -> None:
        while (blob := self.blobs.get()) is not None:
            if self.error is None:
                try:
                    self.out.write(blob)
                    self.out.flush()
                except OSError as exc:  # the parent stopped reading
                    self.error = exc

    def send(self, kind: str, payload: Any) -> None:
        if self.error is not None:
            raise self.error
        self.blobs.put(pickle.dumps((kind, payload), protocol=pickle.HIGHEST_PROTOCOL))

    def close(self) -> None:
        self.blobs.put(None)
        self.writer.join()
        if self.error is not None:
            raise self.error


def _serve(source: BinaryIO, sender: _Sender) -> None:
    """The child: read the request, stream the window's rooms, then say done."""
    from talklog.extract import EXTRACT_CHUNK_ROWS, window_rows
    from talklog.store import make_engine

    url, window, chunk_rows = pickle.load(source)
    engine = make_engine(url)
    try:
        with engine.connect() as connection, connection.begin():
            batch: list[tuple[str, list[tuple[Any, ...]]]] = []
            size = 0
            for room in window_rows(connection, window, chunk_rows or EXTRACT_CHUNK_ROWS):
                batch.append(room)
                size += len(room[1])
                if size >= BATCH_LINES:
                    sender.send(_ROOMS, batch)
                    batch, size = [], 0
            sender.send(_ROOMS, batch)
            sender.send(_DONE, None)
    finally:
        engine.dispose()


def main() -> None:
    gc.disable()  # millions of acyclic tuples; the process ends when the window is read
    sender = _Sender(sys.stdout.buffer)
    try:
        _serve(sys.stdin.buffer, sender)
        sender.close()
    except OSError as exc:
        if exc is sender.error:
            sys.exit(1)  # the parent stopped reading: nothing to report to
        _fail(sender, exc)
    except Exception as exc:  # reported to the parent, which raises it in the task
        _fail(sender, exc)


def _fail(sender: _Sender, exc: Exception) -> None:
    # The class and the database's message only: row values never leave the process (and a
    # message that would quote one is not sent).
    from talklog.store.engine import is_undecodable_text

    reason = getattr(exc, "orig", None) or exc
    first_line = (str(reason).splitlines() or [""])[0]
    if is_undecodable_text(exc):
        first_line = "a text value is not valid UTF-8"
    sender.send(_FAILED, f"{type(exc).__name__}: {first_line}")
    sender.close()
    sys.exit(1)


if __name__ == "__main__":
    main()
