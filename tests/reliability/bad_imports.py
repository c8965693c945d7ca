# ruff: file-ignore[line-too-long]  (the case table keeps one case per row)
"""The bad-import corpus (issue 16), kept as test data: one case per row.

Each case writes its export file(s) into an import folder (or next to it, `outside`) and says
how the import of the last file must end:

- `stored`: every row is stored;
- `refused`: the file is refused as a whole; the refusal names the rule it broke;
- `rejected`: the rows at `lines` (physical line numbers) are rejected with `reason`, every
  other row is stored;
- `text` / `file`: the talk of line 2 is stored whole as a text message, or as one file.

Every file carries `MARKER` (in talks, names, headers, `.env` values): no refusal, rejection,
summary, log or quarantine row may ever show it.
"""

from __future__ import annotations

import csv
import io
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

MARKER = f"secret-marker-{uuid.uuid4().hex}"
HEADER = ("日時", "送信者", "受信者", "チャンネルID", "トーク")
STAFF = "鈴木 一郎(suzuki@example.co.jp)"
CUSTOMER = f"山田 太郎 {MARKER}"  # a bare display name: a LINE user
TEXT = f"ご連絡ありがとうございます {MARKER}"


class Outcome(StrEnum):
    STORED = "stored"
    REFUSED = "refused"
    REJECTED = "rejected"
    TEXT = "stored as text, whole"
    FILE = "stored as file"


Files = Callable[[Path, Path], list[str]]  # (import folder, outside) -> paths to import, in order


@dataclass(frozen=True)
class ImportCase:
    name: str
    outcome: Outcome
    files: Files
    reason: str = ""  # what the refusal or every rejection says
    lines: tuple[int, ...] = ()  # physical lines rejected in the last file
    stored: int | None = None  # messages in the store afterwards
    talk: tuple[str, str | None, str | None] | None = None  # line 2: (type, text, file name)
    via_dag: bool = False  # through the import DAG's operator (confinement is the DAG's)
    postgres: bool = False  # also on PostgreSQL


def row(
    minute: int,
    talk: str = TEXT,
    *,
    channel: str = "ch-yamada",
    sender: str = STAFF,
    receivers: str = CUSTOMER,
    when: str | None = None,
) -> str:
    """One CSV record (quoted as the export does)."""
    out = io.StringIO()
    stamp = when or f"2026/01/09 {10 + minute // 60:02d}:{minute % 60:02d}:00"
    csv.writer(out, lineterminator="\r\n").writerow((stamp, sender, receivers, channel, talk))
    return out.getvalue()


def export(*records: str | bytes) -> bytes:
    """A whole export (UTF-8 with BOM) of these records (bytes are written as they are)."""
    head = ("\ufeff" + ",".join(HEADER) + "\r\n").encode()
    return head + b"".join(r if isinstance(r, bytes) else r.encode() for r in records)


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def one_file(name: str, data: Callable[[], bytes]) -> Files:
    def build(folder: Path, outside: Path) -> list[str]:
        write(folder, name, data())
        return [name]

    return build


def good_file(folder: Path, outside: Path) -> list[str]:
    write(outside, "secret.csv", export(row(0), row(1)))
    return [str(write(folder, "good.csv", export(row(0), row(1))))]  # absolute, inside


def dot_env(folder: Path, outside: Path) -> list[str]:
    write(folder, ".env", f"{','.join(HEADER)}\nTALKLOG_SECRET={MARKER}\n".encode())
    return [".env"]


def hidden_folder(folder: Path, outside: Path) -> list[str]:
    write(folder, ".private/export.csv", export(row(0)))
    return [".private/export.csv"]


def literal(path: str) -> Files:
    return lambda folder, outside: [path]


def traversal_to_own_file(folder: Path, outside: Path) -> list[str]:
    write(outside, "secret.csv", f"TALKLOG_SECRET={MARKER}\n".encode())
    return [f"../{outside.name}/secret.csv"]


def absolute_outside(folder: Path, outside: Path) -> list[str]:
    return [str(write(outside, "secret.csv", f"TALKLOG_SECRET={MARKER}\n".encode()))]


def symlink_out(folder: Path, outside: Path) -> list[str]:
    target = write(outside, "secret.csv", f"TALKLOG_SECRET={MARKER}\n".encode())
    (folder / "export.csv").symlink_to(target)
    return ["export.csv"]


def symlinked_folder_out(folder: Path, outside: Path) -> list[str]:
    write(outside, "secret.csv", f"TALKLOG_SECRET={MARKER}\n".encode())
    (folder / "exports").symlink_to(outside, target_is_directory=True)
    return ["exports/secret.csv"]


def symlink_to_hidden(folder: Path, outside: Path) -> list[str]:
    write(folder, ".env", f"TALKLOG_SECRET={MARKER}\n".encode())
    (folder / "export.csv").symlink_to(folder / ".env")
    return ["export.csv"]


def fifo(folder: Path, outside: Path) -> list[str]:
    os.mkfifo(folder / "export.csv")  # opening it would block the worker
    return ["export.csv"]


def directory(folder: Path, outside: Path) -> list[str]:
    (folder / "export.csv").mkdir()
    return ["export.csv"]


def missing(folder: Path, outside: Path) -> list[str]:
    return ["no-such-export.csv"]


def bad_time(value: str) -> Files:
    return one_file("times.csv", lambda: export(row(0), row(1, when=value), row(2)))


def nul_late(folder: Path, outside: Path) -> list[str]:
    """2,500 rows (two chunks), one talk with a NUL at line 2,101."""
    records = [row(i % 600, f"{TEXT} {i}") for i in range(2_500)]
    records[2_099] = row(5, f"{TEXT} before\x00after")
    write(folder, "nul.csv", export(*records))
    return ["nul.csv"]


def nul_in_name(folder: Path, outside: Path) -> list[str]:
    write(folder, "nul.csv", export(row(0), row(1, sender=f"山田\x00{MARKER}"), row(2)))
    return ["nul.csv"]


def undecodable_late(folder: Path, outside: Path) -> list[str]:
    """3,000 rows; line 2,802 carries Shift-JIS bytes (and the marker)."""
    records = [row(i % 600, f"{TEXT} {i}").encode() for i in range(3_000)]
    records[2_800] = row(7, f"{TEXT} 見積書").encode("cp932")
    write(folder, "late.csv", export(*records))
    return ["late.csv"]


def undecodable_in_multiline_talk(folder: Path, outside: Path) -> list[str]:
    """A quoted talk over lines 3-5 whose line 4 is not UTF-8: the whole record is rejected."""
    bad = row(1, f"一行目\r\n{MARKER} \xff\r\n三行目").encode().replace("\xff".encode(), b"\xff")
    write(folder, "multi.csv", export(row(0), bad, row(2)))
    return ["multi.csv"]


def truncated_utf8_at_end(folder: Path, outside: Path) -> list[str]:
    write(folder, "cut.csv", export(row(0), row(1), row(2, TEXT + "見").encode()[:-4]))
    return ["cut.csv"]


def header_with_content(folder: Path, outside: Path) -> list[str]:
    write(folder, "notes.csv", f"password,{MARKER}\r\n{MARKER},x\r\n".encode())
    return ["notes.csv"]


def undecodable_header(folder: Path, outside: Path) -> list[str]:
    write(folder, "sjis.csv", (",".join(HEADER) + f",{MARKER}\r\n").encode("cp932"))
    return ["sjis.csv"]


def talk(text: str) -> Files:
    return one_file("talk.csv", lambda: export(row(0), row(1, text), row(2)))


def room_reuse(folder: Path, outside: Path) -> list[str]:
    """January: ch-reuse is Suzuki's 1:1 room with Yamada. February: the same id for another
    pair (lines 2-3) next to a new room (line 4), which goes on."""
    write(folder, "jan.csv", export(row(0, channel="ch-reuse"), row(1, channel="ch-reuse")))
    other = dict(sender="高橋 健太(takahashi@example.co.jp)", receivers=f"佐藤 花子 {MARKER}")
    write(
        folder,
        "feb.csv",
        export(
            row(0, channel="ch-reuse", **other),
            row(1, channel="ch-reuse", sender=other["receivers"], receivers=other["sender"]),
            row(2, channel="ch-new", **other),
        ),
    )
    return ["jan.csv", "feb.csv"]


def room_reuse_in_one_file(folder: Path, outside: Path) -> list[str]:
    other = dict(sender="高橋 健太(takahashi@example.co.jp)", receivers="佐藤 花子")
    write(
        folder,
        "mixed.csv",
        export(row(0, channel="ch-mixed"), row(1, channel="ch-mixed", **other), row(2)),
    )
    return ["mixed.csv"]


def third_member_in_one_to_one(folder: Path, outside: Path) -> list[str]:
    write(folder, "jan.csv", export(row(0, channel="ch-pair")))
    group = f"{CUSTOMER}, 佐藤 花子"
    write(folder, "feb.csv", export(row(0, channel="ch-pair", receivers=group), row(1)))
    return ["jan.csv", "feb.csv"]


def ambiguous_name(folder: Path, outside: Path) -> list[str]:
    """Two users share a display name (with the marker); a bare use of it is ambiguous."""
    name = f"佐藤 {MARKER}"
    write(
        folder,
        "ids.csv",
        export(
            row(0, channel="a", receivers=f"{name}(U1)"),
            row(1, channel="b", receivers=f"{name}(U2)"),
        ),
    )
    write(folder, "bare.csv", export(row(0, channel="c", receivers=name), row(1)))
    return ["ids.csv", "bare.csv"]


CASES: list[ImportCase] = [
    # Item 1: the import DAG reads only regular files inside its import folder.
    ImportCase("absolute path inside the folder", Outcome.STORED, good_file, stored=2, via_dag=True),
    ImportCase(".env in the folder", Outcome.REFUSED, dot_env, "hidden", via_dag=True),
    ImportCase("file in a hidden folder", Outcome.REFUSED, hidden_folder, "hidden", via_dag=True),
    ImportCase("../../../../etc/passwd", Outcome.REFUSED, literal("../../../../etc/passwd"), "'..'", via_dag=True),
    ImportCase("traversal to a file of ours", Outcome.REFUSED, traversal_to_own_file, "'..'", via_dag=True),
    ImportCase("/proc/self/environ", Outcome.REFUSED, literal("/proc/self/environ"), "outside the import folder", via_dag=True),
    ImportCase("/etc/passwd", Outcome.REFUSED, literal("/etc/passwd"), "outside the import folder", via_dag=True),
    ImportCase("absolute path outside", Outcome.REFUSED, absolute_outside, "outside the import folder", via_dag=True),
    ImportCase("symlink out", Outcome.REFUSED, symlink_out, "leads out of the import folder", via_dag=True),
    ImportCase("symlinked folder out", Outcome.REFUSED, symlinked_folder_out, "leads out of the import folder", via_dag=True),
    ImportCase("symlink to a hidden file", Outcome.REFUSED, symlink_to_hidden, "hidden", via_dag=True),
    ImportCase("fifo", Outcome.REFUSED, fifo, "not a regular file", via_dag=True),
    ImportCase("directory", Outcome.REFUSED, directory, "not a regular file", via_dag=True),
    ImportCase("missing file", Outcome.REFUSED, missing, "no such file in the import folder", via_dag=True),
    ImportCase("empty path", Outcome.REFUSED, literal(" "), "no path", via_dag=True),
    # Item 2: a file that is not an export is refused without quoting it.
    ImportCase("header with content", Outcome.REFUSED, header_with_content, "line 1 is not a LINE WORKS export header", via_dag=True),
    ImportCase("undecodable header", Outcome.REFUSED, undecodable_header, "line 1 is not UTF-8"),
    # Item 3: times Python or the store cannot hold are rejected rows.
    ImportCase("year 1 (local)", Outcome.REJECTED, bad_time("0001/01/01 00:00:00"), "time", (3,), stored=2, via_dag=True),
    ImportCase("9999-12-31 at -05:00", Outcome.REJECTED, bad_time("9999-12-31T23:59:59-05:00"), "time", (3,), stored=2),
    ImportCase("year 0", Outcome.REJECTED, bad_time("0000/01/01 00:00:00"), "time", (3,), stored=2),
    ImportCase("offset +99:59", Outcome.REJECTED, bad_time("2026-01-09T10:00:00+99:59"), "time", (3,), stored=2),
    ImportCase("offset -24:00", Outcome.REJECTED, bad_time("2026-01-09T10:00:00-24:00"), "time", (3,), stored=2),
    ImportCase("year 9999 (local)", Outcome.REJECTED, bad_time("9999/12/31 23:59:59"), "time", (3,), stored=2),
    # Item 4: PostgreSQL text holds no NUL: the row is rejected, the others stored.
    ImportCase("NUL in a talk, 2,500 rows", Outcome.REJECTED, nul_late, "NUL", (2_101,), stored=2_499, postgres=True),
    ImportCase("NUL in a name", Outcome.REJECTED, nul_in_name, "NUL", (3,), stored=2, postgres=True),
    # Item 5: undecodable lines are rejected at their exact line; the rest goes on.
    ImportCase("undecodable line 2,802 of 3,001", Outcome.REJECTED, undecodable_late, "line 2802 is not UTF-8", (2_802,), stored=2_999, postgres=True),
    ImportCase("undecodable line in a multi-line talk", Outcome.REJECTED, undecodable_in_multiline_talk, "line 4 is not UTF-8", (3,), stored=2),
    ImportCase("cut in a character at the end", Outcome.REJECTED, truncated_utf8_at_end, "line 4 is not UTF-8", (4,), stored=2),
    # Item 6: a marker followed by anything but a file name stays text, whole.
    ImportCase("(写真) and 1,120 characters", Outcome.TEXT, talk("(写真) " + "あ" * 1_120), talk=("text", "(写真) " + "あ" * 1_120, None)),
    ImportCase("(file) see my next message", Outcome.TEXT, talk("(file) see my next message"), talk=("text", "(file) see my next message", None)),
    ImportCase("[画像] with a path", Outcome.TEXT, talk("[画像] ../../etc/passwd.jpg"), talk=("text", "[画像] ../../etc/passwd.jpg", None)),
    ImportCase("[ファイル] and two lines", Outcome.TEXT, talk("[ファイル] a.pdf\nです"), talk=("text", "[ファイル] a.pdf\nです", None)),
    ImportCase("[ファイル] 見積書_2026.pdf", Outcome.FILE, talk("[ファイル] 見積書_2026.pdf"), talk=("file", None, "見積書_2026.pdf")),
    ImportCase("(写真) IMG 0001.JPEG", Outcome.FILE, talk("(写真) IMG 0001.JPEG"), talk=("image", None, "IMG 0001.JPEG")),
    ImportCase("[画像] without a name", Outcome.FILE, talk("[画像]"), talk=("image", None, None)),
    # Item 7: a 1:1 room never gains members.
    ImportCase("room id reused in a later export", Outcome.REJECTED, room_reuse, "room ch-reuse is a 1:1 room of other members", (2, 3), stored=3),
    ImportCase("room id reused in one file", Outcome.REJECTED, room_reuse_in_one_file, "room ch-mixed is a 1:1 room of other members", (3,), stored=2),
    ImportCase("third member in a 1:1 room", Outcome.REJECTED, third_member_in_one_to_one, "room ch-pair is a 1:1 room of other members", (2,), stored=2),
    # Item 2 (rows): a reason never quotes a name.
    ImportCase("ambiguous display name", Outcome.REJECTED, ambiguous_name, "matches 2 users", (2,), stored=3),
]  # fmt: skip
