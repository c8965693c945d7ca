"""The import of one export file: read in chunks, each written in its own transaction."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from talklog.batching import chunked
from talklog.imports.export_format import ExportReader, ExportRow, export_zone, open_export
from talklog.imports.store_writes import StoreWriter
from talklog.imports.summary import ImportSummary, Rejection
from talklog.windows import DEFAULT_TIMEZONE

log = logging.getLogger(__name__)

DEFAULT_CHUNK_ROWS = 2_000


def import_export(
    sessions: sessionmaker[Session],
    path: str | Path,
    *,
    timezone: str = DEFAULT_TIMEZONE,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> ImportSummary:
    """Import a LINE WORKS message export into the store; safe to repeat (see `talklog.imports`).

    Raises `ImportFileError` when the file as a whole cannot be read; single bad rows are
    rejected in the summary instead. Each chunk is committed on its own.
    """
    export_zone(timezone)
    summary = ImportSummary(str(path), timezone)
    writer = StoreWriter(sessions, summary)
    with open_export(path) as stream:
        reader = ExportReader(stream, timezone)
        for chunk in chunked(reader, chunk_rows):
            summary.rows_read += len(chunk)
            summary.rejections.extend(item for item in chunk if isinstance(item, Rejection))
            rows = [item for item in chunk if isinstance(item, ExportRow)]
            if rows:
                writer.write(rows)
            log.info("read %d rows so far, %d inserted", summary.rows_read, summary.inserted)
    summary.download_error = reader.download_error
    summary.warnings = reader.warnings
    summary.rejections.sort(key=lambda rejection: rejection.line)
    return summary
