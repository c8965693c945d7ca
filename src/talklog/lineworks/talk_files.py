"""Checks of a downloaded message-content file before anything of it is loaded.

A download is usable only when it is a complete export: a header this module recognises, no
``downloadLogs error`` trailer (LINE WORKS' mark of an export that failed half way), every
record terminated. These checks are stricter than the import's header detection
(`talklog.imports.export_format`, which accepts any header with the five columns in some
language): a download names its language, so anything but that language's header means the
API changed and is refused, with the header found and the ones expected in the message. The
header is not content; talks are never quoted.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from talklog.lineworks.errors import TalkDownloadError

csv.field_size_limit(16 * 1024 * 1024)  # one talk may be longer than csv's 128 KiB default

HEADERS: dict[str, tuple[tuple[str, ...], ...]] = {
    # documented; an older tool's output named the room column トークルームID
    "ja_JP": (
        ("日時", "送信者", "受信者", "チャンネルID", "トーク"),
        ("日時", "送信者", "受信者", "トークルームID", "トーク"),
    ),
    # not documented: the columns of the Japanese header in English (see docs/lineworks-emulator.md)
    "en_US": (("Date", "Sender", "Receiver", "Channel ID", "Talk"),),
}
"""The header of a download in each language it can be asked for."""
LANGUAGES = tuple(HEADERS)
DOWNLOAD_ERROR_MARK = "downloadlogs error"
_MAX_SHOWN = 200
_TIME = re.compile(r"\d{4}[-/]\d{1,2}[-/]\d{1,2}")


@dataclass(frozen=True)
class TalkFile:
    """A checked download: its language, header, records (talk rows) and size."""

    path: Path
    language: str
    header: tuple[str, ...]
    records: int
    size: int


def _cells(row: list[str]) -> tuple[str, ...]:
    return tuple(cell.strip().lstrip("\ufeff").strip() for cell in row)


def expected_headers(language: str | None = None) -> str:
    """The recognised headers (of one language, or all), for messages."""
    languages = [language] if language in HEADERS else list(HEADERS)
    return " or ".join(",".join(header) for lang in languages for header in HEADERS[lang])


def language_of_header(row: list[str]) -> str | None:
    """The language whose header `row` is, None when it is no header this module knows."""
    found = tuple(cell.casefold() for cell in _cells(row))
    for language, headers in HEADERS.items():
        if any(found == tuple(cell.casefold() for cell in header) for header in headers):
            return language
    return None


def check_header(row: list[str], language: str | None = None) -> str:
    """The header's language; `TalkDownloadError` naming the expected headers otherwise."""
    found = language_of_header(row)
    if found is None or (language is not None and found != language):
        cells = _cells(row)
        # a file without header starts with a talk row: say so, never quote a talk
        shown = "(a talk row)" if cells and _TIME.match(cells[0]) else ",".join(cells)
        raise TalkDownloadError(
            f"the talk download has an unknown header {shown[:_MAX_SHOWN]!r}; expected"
            f" {expected_headers(language)}. LINE WORKS may have changed the export format:"
            " nothing of it was loaded"
        )
    return found


def is_error_trailer(row: list[str]) -> bool:
    """Whether `row` is LINE WORKS' ``downloadLogs error`` line (its first cell, where a talk
    row has its time, so no talk can look like it)."""
    return bool(row) and DOWNLOAD_ERROR_MARK in row[0].casefold()


def check_talk_file(path: Path, language: str | None = None) -> TalkFile:
    """Read the whole file (streamed, one record at a time) and refuse an unusable one."""
    size = path.stat().st_size
    if size == 0:
        raise TalkDownloadError("the talk download is empty (not even a header)")
    _check_terminated(path)
    with path.open(encoding="utf-8-sig", newline="") as stream:
        reader = csv.reader(stream, strict=True)
        header, found, records = None, language, 0
        try:
            for row in reader:
                if header is None:
                    found, header = check_header(row, language), _cells(row)
                elif not row:
                    continue
                elif row[0][:1].isdigit():  # a talk row: its first cell is a time (fast path)
                    records += 1
                elif is_error_trailer(row):
                    raise TalkDownloadError(
                        f"LINE WORKS reported an error while exporting (a downloadLogs error line"
                        f" at line {reader.line_num}): the file is incomplete; download the"
                        " period again"
                    )
                elif any(cell.strip() for cell in row):
                    records += 1
        except csv.Error as error:
            raise TalkDownloadError(
                f"the talk download is truncated or malformed at line {reader.line_num}"
                f" ({error}): download the period again"
            ) from None
        except UnicodeDecodeError as error:
            raise TalkDownloadError(f"the talk download is not UTF-8 ({error.reason})") from None
    if header is None or found is None:
        raise TalkDownloadError("the talk download has no header")
    return TalkFile(path, found, header, records, size)


def _check_terminated(path: Path) -> None:
    with path.open("rb") as handle:
        handle.seek(-1, 2)
        if handle.read(1) != b"\n":
            raise TalkDownloadError(
                "the talk download is truncated: its last record is not terminated;"
                " download the period again"
            )
