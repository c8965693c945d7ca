"""Work streamed from a second process, so that it runs on another core.

The parent starts `python -m <module>`, sends it one pickled request on stdin (never on the
command line or in a log: it may hold a store URL with its password), and reads pickled
`(kind, payload)` messages from its stdout: batches, then done, or a failure's one-line
description. At most a few batches wait in the child's queue and the pipe, so memory stays
bounded whichever side is faster. The child's module calls `serve` from its `__main__`.

Used by the message reader (`talklog.reader`).
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
from collections.abc import Callable, Collection, Generator, Iterator
from typing import Any, BinaryIO

PIPE_BYTES = 1 << 20  # Linux's default ceiling for an unprivileged process
_BATCH, _DONE, _FAILED = "batch", "done", "failed"

Work = Callable[[Any, "Sender"], None]
"""The child's work: the request, and where its batches go."""


@contextlib.contextmanager
def child_stream(
    module: str,
    request: Any,
    error: Callable[[str], Exception],
    *,
    pass_fds: Collection[int] = (),
) -> Generator[Iterator[Any]]:
    """The batches `module`'s child sends for `request`; its failure raised as `error(why)`.

    The child starts at once (it works while the caller does other things) and is stopped
    when the block ends, whether or not every batch was read.
    """
    child = subprocess.Popen(
        [sys.executable, "-m", module],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        pass_fds=tuple(pass_fds),
        env={**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)},
    )
    _widen_pipe(child.stdout)
    try:
        pickle.dump(request, child.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        child.stdin.close()
        yield _batches(child, error)
    finally:
        _stop(child)


def _widen_pipe(pipe: BinaryIO) -> None:
    """Let the pipe hold a few batches (Linux; elsewhere it keeps its size)."""
    with contextlib.suppress(AttributeError, OSError):
        import fcntl

        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def _batches(child: subprocess.Popen[bytes], error: Callable[[str], Exception]) -> Iterator[Any]:
    while True:
        try:
            kind, payload = pickle.load(child.stdout)
        except EOFError:
            child.wait()
            raise error(f"ended early (exit code {child.returncode})") from None
        if kind == _BATCH:
            yield payload
        elif kind == _DONE:
            return
        else:
            raise error(f"failed: {payload}")


def _stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.kill()
    child.wait()
    child.stdout.close()


class Sender:
    """Pickles batches in the working thread and writes them from another, so that the work
    goes on while the parent is still taking the last batch (a pipe holds only 64 KiB); at
    most `depth` batches wait."""

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

    def send(self, payload: Any, kind: str = _BATCH) -> None:
        if self.error is not None:
            raise self.error
        self.blobs.put(pickle.dumps((kind, payload), protocol=pickle.HIGHEST_PROTOCOL))

    def close(self) -> None:
        self.blobs.put(None)
        self.writer.join()
        if self.error is not None:
            raise self.error


def serve(work: Work, describe: Callable[[Exception], str]) -> None:
    """A child's main: run `work` on the parent's request; a failure is sent as
    `describe(exc)` (one line that quotes no row value) and ends the process with 1."""
    gc.disable()  # millions of acyclic tuples; the process ends when the work is done
    sender = Sender(sys.stdout.buffer)
    try:
        work(pickle.load(sys.stdin.buffer), sender)
        sender.send(None, _DONE)
        sender.close()
    except OSError as exc:
        if exc is sender.error:
            sys.exit(1)  # the parent stopped reading: nothing to report to
        _fail(sender, describe(exc))
    except Exception as exc:  # reported to the parent, which raises it
        _fail(sender, describe(exc))


def _fail(sender: Sender, why: str) -> None:
    sender.send(why, _FAILED)
    sender.close()
    sys.exit(1)
