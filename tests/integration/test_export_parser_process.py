"""Exports parsed in the parser process (`talklog.export_parser`) import exactly as those
parsed in this process: the same summary, rejections, warnings and stored rows, the same
refusal of a file that is no export, through the descriptor of a confined file; and no
parser process is left behind."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from talklog.imports import ImportFileError, import_export
from talklog.store import make_session_factory, upgrade

from .test_import_export import FIXTURE, stored

HERE, CHILD = 10**12, 0  # child_from_bytes: never, always


def _export(tmp_path: Path) -> Path:
    """The fixture (good rows, broken times, columns, channels) plus LINE WORKS'
    download-error line, a line that is not UTF-8 and an unterminated quote at the end."""
    extra = (
        b"downloadLogs error\n"
        b"2026/01/09 12:00:00,\xff\xfe broken,x,ch-yamada-1on1,bad bytes\n"
        b'2026/01/09 12:01:00,a,b,ch-yamada-1on1,"unterminated\n'
    )
    path = tmp_path / "export.csv"
    path.write_bytes(FIXTURE.read_bytes() + extra)
    return path


def _import(store_url: str, path: Path, child_from_bytes: int, **options) -> tuple[dict, dict]:
    upgrade(store_url)
    sessions = make_session_factory(store_url)
    summary = import_export(sessions, path, child_from_bytes=child_from_bytes, **options)
    as_dict = summary.as_dict()
    as_dict.pop("file", None)
    return as_dict, stored(sessions)


def _parsers() -> list[psutil.Process]:
    me = psutil.Process()
    return [p for p in me.children(recursive=True) if "talklog.export_parser" in p.cmdline()]


@pytest.mark.parametrize("chunk_rows", [3, 20_000])
def test_the_parser_process_imports_what_this_process_imports(store_url, tmp_path, chunk_rows):
    path = _export(tmp_path)
    child = _import(store_url, path, CHILD, chunk_rows=chunk_rows)
    assert child[0]["inserted"] > 0 and child[0]["rejected"] >= 6
    assert child[0]["download_error"] is True
    second = _import(store_url, path, HERE, chunk_rows=chunk_rows)  # the same store again
    assert second[0]["inserted"] == 0 and second[1] == child[1]
    assert second[0]["rejected_rows"] == child[0]["rejected_rows"]


def test_both_parsers_give_the_same_summary_and_rows(tmp_path):
    path = _export(tmp_path)
    here = _import(f"sqlite:///{tmp_path / 'here.db'}", path, HERE)
    child = _import(f"sqlite:///{tmp_path / 'child.db'}", path, CHILD)
    assert child == here
    assert not _parsers()


def test_a_file_that_is_no_export_is_refused_alike(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text("just,some,columns\n1,2,3\n", encoding="utf-8")
    errors = []
    for child_from_bytes in (HERE, CHILD):
        with pytest.raises(ImportFileError) as raised:
            _import(f"sqlite:///{tmp_path / f'{child_from_bytes}.db'}", path, child_from_bytes)
        errors.append(str(raised.value))
    assert errors[0] == errors[1] and "not a LINE WORKS export header" in errors[0]
    assert not _parsers()


def test_a_confined_file_is_read_through_its_descriptor(tmp_path):
    folder = tmp_path / "imports"
    folder.mkdir()
    path = _export(folder)
    here = _import(f"sqlite:///{tmp_path / 'a.db'}", path, HERE, import_folder=folder)
    child = _import(f"sqlite:///{tmp_path / 'b.db'}", path, CHILD, import_folder=folder)
    assert child == here
    with pytest.raises(ImportFileError):
        _import(f"sqlite:///{tmp_path / 'c.db'}", FIXTURE, CHILD, import_folder=folder)
