"""The pure parts of `talklog links import`: record ids as Salesforce reads them, the CSV."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from talklog.links_admin import LinksFileError, normalized_id, read_rows

ID18 = "003Em00000000aiIAA"  # an emulator contact id (the suffix restores the case)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (ID18, ID18),
        (ID18[:15], ID18[:15]),  # a 15-character id is taken as it is (case-sensitive)
        (ID18.lower(), ID18),  # an 18-character id's case comes from its suffix
        (ID18.upper(), ID18),
        (ID18[:15] + "999", None),  # 6-9 are no suffix characters
        ("003Em00000000a", None),
        ("003Em00000000ai-AA", None),
    ],
)
def test_record_ids_as_salesforce_reads_them(given: str, expected: str | None) -> None:
    assert normalized_id(given) == expected


def test_rows_keep_their_line_numbers_and_a_bad_time_is_that_lines_error(tmp_path: Path) -> None:
    path = tmp_path / "links.csv"
    path.write_text(
        "\ufeffcontact_id,target_id,linked_since\n"
        f"c-1,{ID18},\n"
        f"c-2,{ID18},2025-06-01T09:30:00+09:00\n"
        f"c-3,{ID18},2025-06-01 09:30\n",  # no offset: refused, never guessed
        encoding="utf-8",
    )
    rows, errors = read_rows(path)
    assert [(r.line, r.contact_id) for r in rows] == [(2, "c-1"), (3, "c-2")]
    assert rows[1].linked_since == dt.datetime(2025, 6, 1, 0, 30, tzinfo=dt.UTC)
    assert errors == [(4, "malformed linked_since: not an ISO time with an offset")]


def test_a_header_without_a_contact_or_a_target_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "links.csv"
    path.write_text("staff,target_id\nsuzuki,x\n", encoding="utf-8")
    with pytest.raises(LinksFileError, match="the header needs target_id"):
        read_rows(path)
