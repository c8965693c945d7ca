"""The import of one export file: read in chunks, each written in its own transaction."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import BinaryIO

from sqlalchemy.orm import Session, sessionmaker

from talklog.batching import chunked, collector_paused
from talklog.imports.confinement import confine, open_confined
from talklog.imports.export_format import (
    ExportReader,
    ExportRow,
    ImportFileError,
    export_zone,
    open_export,
)
from talklog.imports.store_writes import Committed, ImportStoreError, StoreWriter
from talklog.imports.summary import ImportSummary, Rejection
from talklog.windows import DEFAULT_TIMEZONE

log = logging.getLogger(__name__)

DEFAULT_CHUNK_ROWS = 20_000


def import_export(
    sessions: sessionmaker[Session],
    path: str | Path,
    *,
    timezone: str = DEFAULT_TIMEZONE,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    import_folder: str | Path | None = None,
    run_id: str | None = None,
    directory: bool = False,
) -> ImportSummary:
    """Import a LINE WORKS message export into the store; safe to repeat (see `talklog.imports`).

    With `import_folder`, `path` must be a regular file inside it (`confinement`). Raises
    `ImportFileError` when the file as a whole cannot be read and `ImportStoreError` when the
    store refuses a chunk; after committed chunks, their message says what is stored and the
    line to resume from. Single bad rows are rejected (and quarantined) instead.

    With `directory`, every party must be in the store's directory (`talklog.directory_sync`):
    an unknown or ambiguous one keeps its row out, quarantined (`identities`).
    """
    export_zone(timezone)
    summary = ImportSummary(str(path), timezone)
    name = Path(str(path).strip()).name
    with (
        _open(path, import_folder) as stream,
        StoreWriter(sessions, summary, name, run_id, directory=directory) as writer,
    ):
        reader = ExportReader(stream, timezone)
        try:
            with collector_paused():
                _write_chunks(reader, writer, chunk_rows)
                writer.finish()
        except (ImportFileError, ImportStoreError) as error:
            writer.close()
            raise type(error)(f"{error}; {_progress(writer.committed)}") from None
        except OSError as error:
            writer.close()
            problem = f"reading the file failed ({error.strerror or type(error).__name__})"
            raise ImportFileError(f"{problem}; {_progress(writer.committed)}") from None
    summary.download_error = reader.download_error
    summary.warnings = [*reader.warnings, *summary.warnings]  # the writer's: message keys
    summary.rejections.sort(key=lambda rejection: rejection.line)
    return summary


def _open(
    path: str | Path, import_folder: str | Path | None
) -> contextlib.AbstractContextManager[BinaryIO]:
    if import_folder is None:
        return open_export(path)
    return open_confined(confine(import_folder, path))


def _write_chunks(reader: ExportReader, writer: StoreWriter, chunk_rows: int) -> None:
    summary = writer.summary
    for chunk in chunked(reader, chunk_rows):
        rows = [item for item in chunk if isinstance(item, ExportRow)]
        rejections = [item for item in chunk if isinstance(item, Rejection)]
        end_line = max(item.end_line or item.line for item in chunk)
        writer.write(rows, rejections, end_line)
        summary.rows_read += len(chunk)
        log.info("read %d rows so far, %d inserted", summary.rows_read, summary.inserted)


def _progress(committed: Committed) -> str:
    """What the committed chunks hold and where a partial re-import would start."""
    if not committed.end_line:
        return "nothing was stored; import the file again once the cause is fixed"
    return (
        f"{committed.inserted:,} rows stored, {committed.duplicates:,} duplicates skipped and"
        f" {committed.rejected:,} rejected up to line {committed.end_line}; resume from line"
        f" {committed.end_line + 1} (importing the whole file again is harmless too)"
    )
