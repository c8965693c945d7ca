"""A big export parsed in a second process, so that the CSV parse (decoding, cells, times,
parties, talk types) runs on another core while this one matches identities and writes the
store.

The parent opens the file (confined, `confinement`) and passes its descriptor, never its
path, to `python -m talklog.export_parser` (`talklog.child_stream`), with the time
zone and the chunk size. The child reads the file through the descriptor and sends its
chunks of `ExportRow`s and `Rejection`s in file order (rows are named tuples: they pickle
several times faster than objects), then what the reader noted of the whole file (a download
error line, warnings). A file the reader refuses is refused with the same `ImportFileError`,
at the same point: after the chunks before it. The chunks are the ones `ExportReader` gives
in this process, so a file imports the same either way.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Generator, Iterator
from typing import Any, BinaryIO

from talklog.batching import chunked
from talklog.child_stream import Sender, child_stream, serve
from talklog.imports.export_format import ExportReader, ExportRow, ImportFileError
from talklog.imports.summary import Rejection

CHILD_PARSE_BYTES = 16 * 2**20  # from about 40,000 rows: below, starting a process costs more
_CHUNK, _END, _FILE_ERROR, _OS_ERROR = "chunk", "end", "file_error", "os_error"
Chunk = list[ExportRow | Rejection]


class ParsedChunks:
    """The chunks of an export, and once they are read, the reader's notes on the file."""

    def __init__(self, chunks: Iterator[Chunk], reader: Any = None) -> None:
        self._chunks = chunks
        self._reader = reader  # in this process: the ExportReader, read at the end
        self.download_error = False
        self.warnings: list[str] = []

    def __iter__(self) -> Iterator[Chunk]:
        yield from self._chunks
        if self._reader is not None:
            self.download_error, self.warnings = self._reader.download_error, self._reader.warnings


def wants_child(stream: BinaryIO, threshold: int | None = None) -> bool:
    """Whether to parse `stream` in a child: a real file of at least `threshold` bytes."""
    try:
        size = os.fstat(stream.fileno()).st_size
    except (AttributeError, OSError, ValueError):  # not a file (an in-memory export)
        return False
    return size >= (CHILD_PARSE_BYTES if threshold is None else threshold)


def parsed_here(stream: BinaryIO, timezone: str, chunk_rows: int) -> ParsedChunks:
    reader = ExportReader(stream, timezone)
    return ParsedChunks(chunked(reader, chunk_rows), reader)


@contextlib.contextmanager
def parsed_in_child(stream: BinaryIO, timezone: str, chunk_rows: int) -> Generator[ParsedChunks]:
    """The chunks of `stream` (an open file, read from its current offset) parsed in a child."""
    fd = stream.fileno()
    request = (fd, stream.tell(), timezone, chunk_rows)
    with child_stream(__name__, request, _parser_error, pass_fds=(fd,)) as batches:
        parsed = ParsedChunks(iter(()))
        parsed._chunks = _chunks(batches, parsed)
        yield parsed


def _chunks(batches: Iterator[Any], parsed: ParsedChunks) -> Iterator[Chunk]:
    for kind, *payload in batches:
        if kind == _CHUNK:
            yield payload[0]
        elif kind == _END:
            parsed.download_error, parsed.warnings = payload
        elif kind == _FILE_ERROR:
            raise ImportFileError(payload[0])
        else:
            raise OSError(*payload)


def _parser_error(why: str) -> ImportFileError:
    return ImportFileError(f"the export parser process {why}")


def _serve(request: tuple[int, int, str, int], sender: Sender) -> None:
    """The child: parse the file behind the descriptor and send its chunks."""
    fd, offset, timezone, chunk_rows = request
    with os.fdopen(fd, "rb", closefd=False) as stream:
        stream.seek(offset)
        reader = ExportReader(stream, timezone)
        try:
            for chunk in chunked(reader, chunk_rows):
                sender.send((_CHUNK, chunk))
        except ImportFileError as error:  # its message names lines and columns, never cells
            sender.send((_FILE_ERROR, str(error)))
            return
        except OSError as error:
            sender.send((_OS_ERROR, error.errno, error.strerror or type(error).__name__))
            return
        sender.send((_END, reader.download_error, reader.warnings))


def _describe(exc: Exception) -> str:
    return type(exc).__name__  # never its message: it could quote a row


def main() -> None:
    serve(_serve, _describe)


if __name__ == "__main__":
    main()
