"""Parsing LINE WORKS message exports: times, parties, placeholders, keys, broken rows."""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from talklog.imports import (
    ExportReader,
    ExportRow,
    ImportFileError,
    ImportPathRefused,
    Party,
    Rejection,
    RowProblem,
    classify_talk,
    confine,
    parse_parties,
    parse_party,
    parse_time,
    read_export,
)
from talklog.imports.message_keys import MessageKeys

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "lineworks_export.csv"
TOKYO = ZoneInfo("Asia/Tokyo")
HEADER = "日時,送信者,受信者,チャンネルID,トーク\r\n"
# Physical first line of each broken row of the fixture, and what its reason says.
BROKEN = {
    9: "expected 5 columns",
    12: "unreadable time",
    13: "empty channel",
    24: "unreadable time",
}


def parse(text: str, timezone: str = "Asia/Tokyo") -> list[ExportRow | Rejection]:
    return list(ExportReader(io.StringIO(text, newline=""), timezone))


def test_fixture_rows_and_broken_rows_with_physical_line_numbers():
    items = list(read_export(FIXTURE))
    rows = [item for item in items if isinstance(item, ExportRow)]
    rejected = [item for item in items if isinstance(item, Rejection)]
    assert len(items) == 18 and len(rows) == 14
    assert {r.line: r.reason for r in rejected}.keys() == BROKEN.keys()
    for rejection in rejected:
        assert BROKEN[rejection.line] in rejection.reason
    assert next(r for r in rejected if r.line == 24).end_line == 26  # a broken multi-line row
    assert [r.line for r in rows] == [2, 3, 6, 7, 8, 10, 11, 14, 16, 22, 23, 27, 28, 29]


def test_fixture_multi_line_text_emoji_and_quotes_survive():
    rows = {r.line: r for r in read_export(FIXTURE) if isinstance(r, ExportRow)}
    assert rows[3].text == "こちらこそ！\n見積書の件、\nよろしくお願いします😊"
    assert (
        rows[14].text == "皆さん、新商品のご案内です✨\n詳細は添付をご覧ください。"
    )  # CRLF inside
    assert rows[16].text.splitlines()[0] == "はじめまして💐"
    assert rows[23].text == '価格は "特別価格" で、納期は2週間です, よろしくお願いします'
    assert rows[16].sender == Party("佐藤 花子🌸")
    assert rows[2].sender == Party("鈴木 一郎", "suzuki@example.co.jp")
    assert len(rows[14].receivers) == 3


def test_fixture_placeholders_become_message_types():
    rows = {r.line: r for r in read_export(FIXTURE) if isinstance(r, ExportRow)}
    assert (rows[6].message_type, rows[6].file_name) == ("file", "見積書_2026.pdf")
    assert (rows[7].message_type, rows[7].text) == ("sticker", None)
    assert (rows[22].message_type, rows[22].file_name) == ("image", "IMG_0001.jpg")
    assert (rows[28].message_type, rows[28].text) == ("location", "東京都千代田区丸の内1-1-1")
    assert rows[29].message_type == "text"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026/01/09 10:00:00", dt.datetime(2026, 1, 9, 10, tzinfo=TOKYO)),
        ("2026-01-09 10:00:00", dt.datetime(2026, 1, 9, 10, tzinfo=TOKYO)),
        ("2026/1/9 9:05", dt.datetime(2026, 1, 9, 9, 5, tzinfo=TOKYO)),
        ("2026-01-09T10:00:00+09:00", dt.datetime(2026, 1, 9, 1, tzinfo=dt.UTC)),
        ("2026-01-09T01:00:00Z", dt.datetime(2026, 1, 9, 1, tzinfo=dt.UTC)),
        ("2026-01-09 10:00:00.250", dt.datetime(2026, 1, 9, 10, 0, 0, 250_000, tzinfo=TOKYO)),
        (" 2026/01/09 10:00:00 ", dt.datetime(2026, 1, 9, 10, tzinfo=TOKYO)),
    ],
)
def test_parse_time_formats(value, expected):
    parsed = parse_time(value, TOKYO)
    assert parsed == expected and parsed.utcoffset() is not None


@pytest.mark.parametrize("value", ["", "昨日 10:00", "2026/13/01 10:00:00", "2026-01-09", "10:00"])
def test_parse_time_refuses(value):
    with pytest.raises(ValueError, match="unreadable time"):
        parse_time(value, TOKYO)


def test_time_zone_is_configurable():
    (row,) = parse(HEADER + "2026/01/09 10:00:00,a(a@x.jp),b,ch,hi\r\n", "UTC")
    assert row.sent_at == dt.datetime(2026, 1, 9, 10, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("鈴木 一郎(suzuki@example.co.jp)", Party("鈴木 一郎", "suzuki@example.co.jp")),
        ("鈴木 一郎（suzuki@example.co.jp）", Party("鈴木 一郎", "suzuki@example.co.jp")),
        ("鈴木 一郎 <suzuki@example.co.jp>", Party("鈴木 一郎", "suzuki@example.co.jp")),
        ("(U1234)", Party("U1234", "U1234")),
        ("  山田   太郎 ", Party("山田 太郎")),
        ("山田 (営業部)", Party("山田 (営業部)")),  # not an id: part of the name
        ("", None),
    ],
)
def test_parse_party(value, expected):
    assert parse_party(value) == expected


def test_parse_parties_splits_group_receivers():
    assert parse_parties("鈴木 一郎(s@x.jp), 山田 太郎、佐藤 花子🌸,") == (
        Party("鈴木 一郎", "s@x.jp"),
        Party("山田 太郎"),
        Party("佐藤 花子🌸"),
    )


@pytest.mark.parametrize(
    ("talk", "expected"),
    [
        ("[スタンプ]", ("sticker", None, None)),
        ("[Sticker]", ("sticker", None, None)),
        ("【画像】 a.jpg", ("image", None, "a.jpg")),
        ("[File] 見積書.pdf", ("file", None, "見積書.pdf")),
        ("(動画)", ("video", None, None)),
        ("[ボイスメッセージ]", ("audio", None, None)),
        ("[位置情報] 東京駅", ("location", "東京駅", None)),
        ("[重要] 明日は休みです", ("text", "[重要] 明日は休みです", None)),
        ("画像を送ります [画像]", ("text", "画像を送ります [画像]", None)),
        # A marker followed by what cannot be a file name (or a sticker, a place) is text, whole.
        ("(写真) " + "あ" * 1_120, ("text", "(写真) " + "あ" * 1_120, None)),
        ("(file) see my next message", ("text", "(file) see my next message", None)),
        ("[画像] dir/a.jpg", ("text", "[画像] dir/a.jpg", None)),
        ("[画像] dir\\a.jpg", ("text", "[画像] dir\\a.jpg", None)),
        ("[ファイル] a.pdf\n本文", ("text", "[ファイル] a.pdf\n本文", None)),
        ("[ファイル] .pdf", ("text", "[ファイル] .pdf", None)),
        ("[ファイル] " + "a" * 252 + ".pdf", ("text", "[ファイル] " + "a" * 252 + ".pdf", None)),
        ("[ファイル] " + "a" * 251 + ".pdf", ("file", None, "a" * 251 + ".pdf")),
        ("(写真) IMG 0001.JPEG", ("image", None, "IMG 0001.JPEG")),
        ("[動画] 会議　録画.mp4", ("video", None, "会議　録画.mp4")),
        ("[スタンプ] " + "x" * 101, ("text", "[スタンプ] " + "x" * 101, None)),
        ("[位置情報] 東京駅\n丸の内口", ("text", "[位置情報] 東京駅\n丸の内口", None)),
    ],
)
def test_classify_talk(talk, expected):
    assert classify_talk(talk) == expected


@pytest.mark.parametrize(
    "value",
    [
        "0001/01/01 00:00:00",
        "9999-12-31T23:59:59-05:00",
        "9999/12/31 23:59:59",
        "0000/01/01 00:00:00",
        "2026-01-09T10:00:00+99:59",
        "2026-01-09T10:00:00-24:00",
        "1999-12-31T23:59:59Z",
        "2100-01-01T00:00:00Z",
    ],
)
def test_times_python_or_the_store_cannot_hold_are_row_problems(value):
    with pytest.raises(RowProblem) as problem:
        parse_time(value, TOKYO)
    assert problem.value.code in {"unreadable_time", "time_out_of_range"}
    assert value not in str(problem.value) and value[:4] not in str(problem.value)


def test_a_header_that_is_not_an_export_is_described_not_quoted():
    with pytest.raises(ImportFileError) as refused:
        parse("password,hunter2,x\r\n1,2,3\r\n")
    message = str(refused.value)
    assert message.startswith("line 1 is not a LINE WORKS export header")
    assert "found 3 columns" in message and "hunter2" not in message


def test_undecodable_lines_reject_their_record_at_the_exact_line():
    data = (HEADER + "2026/01/09 10:00:00,a,b,ch,hi\r\n").encode()
    data += b'2026/01/09 10:01:00,a,b,ch,"x\r\n' + b"\xff\xfe\r\n" + b'y"\r\n'
    data += b"2026/01/09 10:02:00,a,b,ch,\x82\xa0\r\n"
    data += b"2026/01/09 10:03:00,a,b,ch,ok\r\n"
    items = list(ExportReader(io.BytesIO(data)))
    assert [type(i).__name__ for i in items] == ["ExportRow", "Rejection", "Rejection", "ExportRow"]
    assert (items[1].line, items[1].end_line, items[1].code) == (3, 5, "not_utf8")
    assert items[1].reason.startswith("line 4 is not UTF-8 (invalid start byte)")
    assert items[2].reason.startswith("line 6 is not UTF-8") and items[3].line == 7


def test_a_lone_cr_ends_a_line_in_a_binary_export():
    data = (HEADER.replace("\r\n", "\r") + "2026/01/09 10:00:00,a,b,ch,hi\r").encode()
    (row,) = ExportReader(io.BytesIO(data))
    assert (row.line, row.text) == (2, "hi")


def test_a_nul_character_rejects_the_row():
    (rejected,) = parse(HEADER + "2026/01/09 10:00:00,a,b,ch,private\x00talk\r\n")
    assert isinstance(rejected, Rejection) and rejected.code == "nul"
    assert "private" not in rejected.reason and "talk" not in rejected.reason


@pytest.fixture
def folder(tmp_path) -> Path:
    (tmp_path / "imports" / "2026").mkdir(parents=True)
    (tmp_path / "imports" / "2026" / "a.csv").write_text("x")
    (tmp_path / "outside.csv").write_text("x")
    (tmp_path / "imports" / ".env").write_text("x")
    (tmp_path / "imports" / "out.csv").symlink_to(tmp_path / "outside.csv")
    (tmp_path / "imports" / "in.csv").symlink_to(tmp_path / "imports" / "2026" / "a.csv")
    return tmp_path / "imports"


@pytest.mark.parametrize("path", ["2026/a.csv", "in.csv", " 2026/a.csv "])
def test_confine_accepts_regular_files_inside_the_folder(folder, path):
    assert confine(folder, path) == (folder / "2026" / "a.csv").resolve()
    assert confine(folder, str(folder / path.strip())) == (folder / "2026" / "a.csv").resolve()


@pytest.mark.parametrize(
    ("path", "rule"),
    [
        ("", "no path"),
        ("../outside.csv", "'..'"),
        ("2026/../2026/a.csv", "'..'"),
        ("/etc/passwd", "outside the import folder"),
        ("/proc/self/environ", "outside the import folder"),
        (".env", "hidden"),
        ("out.csv", "leads out of the import folder"),
        ("2026", "not a regular file"),
        ("nope.csv", "no such file"),
    ],
)
def test_confine_refuses_with_the_rule_broken(folder, path, rule):
    with pytest.raises(ImportPathRefused, match=re.escape(rule)):
        confine(folder, path)


def _keys(rows: list[ExportRow], sender: tuple[str, str] = ("lw", "s@x.jp")) -> list[str]:
    numbering = MessageKeys()
    return [
        numbering.key(r.channel_id, r.sent_at, sender, r.message_type, r.text, r.file_name)[0]
        for r in rows
    ]


def test_identical_messages_in_one_minute_get_distinct_keys_and_renumbering_gives_the_same():
    line = "2026/01/09 10:05:{s},山田 太郎,鈴木 一郎(s@x.jp),ch,ありがとう\r\n"
    first = parse(HEADER + line.format(s="00") + line.format(s="59"))
    again = parse(HEADER + line.format(s="10") + line.format(s="10"))
    assert len(set(_keys(first))) == 2
    assert _keys(first) == _keys(again)


def test_key_does_not_depend_on_the_time_format_seconds_or_line_endings():
    a = parse(HEADER + '2026/01/09 10:05:07,x(x@x.jp),y,ch,"a\r\nb"\r\n')
    b = parse(HEADER.replace("\r\n", "\n") + '2026-01-09T01:05Z,x(x@x.jp),y,ch,"a\nb"\n')
    assert _keys(a) == _keys(b)
    assert _keys(a) != _keys(a, ("lw", "other@x.jp"))  # the sender's id is part of it


def test_with_and_without_bom_parse_identically(tmp_path):
    plain = tmp_path / "plain.csv"
    plain.write_bytes(FIXTURE.read_bytes().removeprefix(b"\xef\xbb\xbf"))
    assert FIXTURE.read_bytes().startswith(b"\xef\xbb\xbf")
    assert list(read_export(plain)) == list(read_export(FIXTURE))


def test_english_header_and_column_order():
    text = "Talk,Channel ID,Sender,Receiver,Date\r\nhi,ch,a(a@x.jp),b,2026/01/09 10:00:00\r\n"
    (row,) = parse(text)
    assert (row.channel_id, row.text, row.sender.account_id) == ("ch", "hi", "a@x.jp")


def test_download_error_at_the_end_is_rejected_and_flagged():
    reader = ExportReader(
        io.StringIO(HEADER + "2026/01/09 10:00:00,a,b,ch,hi\r\ndownloadLogs error: timeout\r\n")
    )
    items = list(reader)
    assert isinstance(items[1], Rejection) and items[1].line == 3
    assert reader.download_error


def test_blank_lines_are_not_rows():
    assert len(parse(HEADER + "\r\n2026/01/09 10:00:00,a,b,ch,hi\r\n\r\n")) == 1


def test_files_that_are_not_exports_fail_as_a_whole(tmp_path):
    """Missing, no header, a header of other columns, a header that is not UTF-8."""
    with pytest.raises(ImportFileError, match="not found"):
        list(read_export(tmp_path / "missing.csv"))
    with pytest.raises(ImportFileError, match="expected the columns"):
        parse("a,b,c\r\n1,2,3\r\n")
    with pytest.raises(ImportFileError, match="no header"):
        parse("")
    sjis = tmp_path / "sjis.csv"
    sjis.write_bytes((HEADER + "2026/01/09 10:00:00,山田,鈴木,ch,こんにちは\r\n").encode("cp932"))
    with pytest.raises(ImportFileError, match="not UTF-8"):
        list(read_export(sjis))


def test_message_keys_are_stable_across_releases():
    """Changing the key scheme would make every re-import duplicate the store's messages
    (migrations re-keyed the earlier ones: 0004 `lwx:`, 0005 `lwk:`, whose hash `lwt:` keeps)."""
    first = next(iter(read_export(FIXTURE)))
    assert _keys([first]) == [
        "lwt:202601090100:b2b754c4f06905c990992ffb4c210cb31733e830eb121493ef2d608eb9e30b2f"
    ]


def test_ids_longer_than_the_store_allows_are_rejected():
    (rejected,) = parse(HEADER + f"2026/01/09 10:00:00,a,b,{'c' * 65},hi\r\n")
    assert isinstance(rejected, Rejection) and "channel id longer than 64" in rejected.reason


A, B, C = ("line", "U-a"), ("line", "U-b"), ("line", "U-c")
STAFF_ID = ("lw", "u-suzuki")


def _namesake(*people: tuple[str, str]):
    from talklog.imports.identities import Unplaced

    return Unplaced("ambiguous_name", "shared", frozenset(people))


def _unknown():
    from talklog.imports.identities import UNKNOWN, Unplaced

    return Unplaced("unknown_person", UNKNOWN)


@pytest.mark.parametrize(
    ("namesakes", "members", "expected"),
    [
        ((A, B), {STAFF_ID, A}, A),  # shared in the directory, one of them in the room
        ((A, B, C), {STAFF_ID, C, ("line", "U-y")}, C),
        ((A, B), {STAFF_ID, A, B}, "ambiguous_name"),  # two in the room: never picked
        ((A, B), {STAFF_ID}, "ambiguous_name"),  # none in the room: never another room's
        ((A, B), set(), "ambiguous_name"),  # a room the store does not know
    ],
)
def test_an_ambiguous_name_is_the_one_member_of_the_room_with_it(namesakes, members, expected):
    from talklog.imports.identities import among

    told = among(_namesake(*namesakes), members)
    assert told == expected if isinstance(expected, tuple) else told.code == expected
    if not isinstance(expected, tuple):
        assert "U-" not in told.reason


def test_a_name_matched_or_unknown_is_left_as_it_is_by_the_room():
    from talklog.imports.identities import among

    assert among(A, {B}) == A
    assert among(_unknown(), {A}) == _unknown()


@pytest.mark.parametrize(
    ("found", "members", "expected"),
    [  # sender, receivers as found in the directory -> as told by the room
        ([_unknown(), STAFF_ID], {STAFF_ID, A}, [A, STAFF_ID]),  # renamed, as before
        ([_unknown(), STAFF_ID, _namesake(A, B)], {STAFF_ID, A, C}, [C, STAFF_ID, A]),
        ([_namesake(A, B), STAFF_ID, _unknown()], {STAFF_ID, A, C}, [A, STAFF_ID, C]),
        ([_unknown(), STAFF_ID], {STAFF_ID, A, C}, None),  # two customers the row may be
        ([_unknown(), _unknown()], {STAFF_ID, A}, None),  # two unknown names
        ([_unknown(), STAFF_ID, _namesake(A, B)], {STAFF_ID, A, B}, None),
    ],
)
def test_a_rows_parties_told_by_its_room(found, members, expected):
    from talklog.imports.identities import in_room

    parties = tuple(Party(name) for name in ("新しい名前", "鈴木", "同名")[: len(found)])
    told = in_room(found, parties, members)
    if expected is None:
        assert any(not isinstance(who, tuple) for who in told)
    else:
        assert told == expected
