"""Talk ingestion: the talks of a time range downloaded from LINE WORKS into the store.

`ingest_talks` asks the Monitoring API for [start - margin, end + margin] (whole minutes, so
every download numbers a minute's identical messages from its first: `message_keys`), in
slices of at most 31 days, one download at a time. Each slice streams to a temporary file
(deleted after), checked by the client (header, `downloadLogs error` trailer, truncation:
`TalkDownloadError`, and nothing of it is imported), imported through the one importer with
the directory's people (`import_export(directory=True)`: an unknown or ambiguous sender is
quarantined, never invented), then recorded as covered (`talklog.coverage`, source
`lineworks`). Bot posts are not asked for (`botMessageFilterType=exclude`): a bot is no
talk party. A failed slice stops the ingestion; the slices before it stay covered.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from talklog import coverage
from talklog.imports import ImportSummary, import_export
from talklog.lineworks import TalkFile
from talklog.lineworks.times import MAX_DOWNLOAD_PERIOD, slices
from talklog.store.models import CoverageSource
from talklog.summary import JobSummary
from talklog.windows import DEFAULT_TIMEZONE

MARGIN = dt.timedelta(minutes=5)
"""Asked for on each side of a window: a message at its edge is in one download at least."""
BOT_FILTER = "exclude"
log = logging.getLogger(__name__)


class TalkSource(Protocol):
    """What ingestion downloads with (`talklog.lineworks.LineWorksClient`)."""

    api_calls: int

    def download_talks(
        self, start: dt.datetime, end: dt.datetime, to_path: str | Path, **options: Any
    ) -> TalkFile: ...


@dataclass(kw_only=True)
class IngestSummary(JobSummary):
    """What an ingestion stored (`api_calls`: none to Salesforce)."""

    period: str = ""
    downloads: int = 0
    talks_downloaded: int = 0
    messages_new: int = 0
    messages_known: int = 0
    quarantined: int = 0
    rejected_rows: int = 0
    covered: list[str] = field(default_factory=list)
    lineworks_api_calls: int = 0

    def add(self, start: dt.datetime, end: dt.datetime, talks: TalkFile, imported: ImportSummary):
        self.downloads += 1
        self.talks_downloaded += talks.records
        self.messages_new += imported.inserted
        self.messages_known += imported.duplicates
        self.quarantined += imported.quarantined
        self.rejected_rows += imported.rejected
        self.covered.append(f"{start.isoformat()} .. {end.isoformat()}")


def download_period(
    start: dt.datetime, end: dt.datetime, margin: dt.timedelta = MARGIN
) -> tuple[dt.datetime, dt.datetime]:
    """[start - margin, end + margin] on whole minutes, in UTC."""
    first = (start - margin).astimezone(dt.UTC).replace(second=0, microsecond=0)
    last = (end + margin).astimezone(dt.UTC)
    if last.second or last.microsecond:
        last = last.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    return first, last


def ingest_talks(
    sessions: sessionmaker[Session],
    source: TalkSource,
    start: dt.datetime,
    end: dt.datetime,
    *,
    margin: dt.timedelta = MARGIN,
    slice_length: dt.timedelta = MAX_DOWNLOAD_PERIOD,
    timezone: str = DEFAULT_TIMEZONE,
    language: str = "ja_JP",
    domain_id: int | None = None,
    run_id: str | None = None,
    workdir: str | Path | None = None,
) -> IngestSummary:
    """Download, import and record as covered the talks of [start, end) (see the module)."""
    first, last = download_period(start, end, margin)
    summary = IngestSummary(period=f"{first.isoformat()} .. {last.isoformat()}")
    calls_before = source.api_calls
    for piece_start, piece_end in slices(first, last, slice_length):
        with tempfile.TemporaryDirectory(prefix="talklog-ingest-", dir=workdir) as folder:
            path = Path(folder) / "message_contents.csv"
            options = {"language": language, "bot_filter": BOT_FILTER, "domain_id": domain_id}
            talks = source.download_talks(piece_start, piece_end, path, **options)
            imported = import_export(
                sessions, path, timezone=timezone, run_id=run_id, directory=True
            )
        with sessions.begin() as session:
            coverage.record(
                session,
                piece_start,
                piece_end,
                CoverageSource.LINEWORKS,
                run_id=run_id,
                detail=f"{talks.records} talks downloaded",
            )
        summary.add(piece_start, piece_end, talks, imported)
        log.info(
            "Ingested %s .. %s: %d talks, %d new, %d known, %d quarantined",
            piece_start, piece_end, talks.records, imported.inserted, imported.duplicates,
            imported.quarantined,
        )  # fmt: skip
    summary.lineworks_api_calls = source.api_calls - calls_before
    return summary
