"""Bad imports (issue 16): every case of `bad_imports.CASES` ends as its table row says —
refused with the rule it broke, rows rejected at their physical lines (and quarantined), or
the talk stored whole — and no output ever shows the file's content (`MARKER`).

Cases about the import DAG run whole through Airflow (`dag.test()`, the real operator, its
import folder from `TALKLOG_IMPORT_FOLDER`); the others call the importer (the `talklog
import` CLI's path), on SQLite and, for the cases marked so, on PostgreSQL.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from airflow.dag_processing.dagbag import DagBag

from talklog import quarantine
from talklog.cli import main as cli
from talklog.imports import ImportFileError, ImportStoreError, import_export
from talklog.store import make_session_factory
from talklog.store.migrate import upgrade
from talklog.store.models import Message, Room, RoomMember
from tests.reliability.bad_imports import (
    CASES,
    MARKER,
    TEXT,
    ImportCase,
    Outcome,
    export,
    row,
    write,
)

pytestmark = pytest.mark.reliability
REPO = Path(__file__).resolve().parents[2]
DAG_CASES = [case for case in CASES if case.via_dag]
STORE_CASES = [
    pytest.param(case, database, id=f"{case.name}-{database}")
    for case in CASES
    if not case.via_dag
    for database in (("sqlite", "postgresql") if case.postgres else ("sqlite",))
]


@dataclass
class Seen:
    """What an import of a case's files showed: summary (last file), error, every output."""

    summary: dict[str, Any] | None = None
    error: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def places(tmp_path) -> tuple[Path, Path]:
    folder, outside = tmp_path / "imports", tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    return folder, outside


def _store(request, database: str) -> str:
    url = request.getfixturevalue("sqlite_url" if database == "sqlite" else "postgres_url")
    upgrade(url)
    return url


def run_importer(url: str, folder: Path, paths: list[str]) -> Seen:
    outcome = Seen()
    for path in paths:
        try:
            outcome.summary = import_export(make_session_factory(url), folder / path).as_dict()
        except (ImportFileError, ImportStoreError) as error:
            outcome.error = f"{error}\n{error!r}"
            outcome.summary = None
    return outcome


def run_dag(dag, folder: Path, paths: list[str], monkeypatch) -> Seen:
    from tests.e2e.test_import_dag import summary_of

    monkeypatch.setenv("TALKLOG_IMPORT_FOLDER", str(folder))
    outcome = Seen()
    for path in paths:
        run = dag.test(run_conf={"path": path, "timezone": "Asia/Tokyo"})
        outcome.summary = summary_of(run) if run.state == "success" else None
        outcome.error = None if run.state == "success" else f"run {run.state}"
    return outcome


def operator_refusal(folder: Path, path: str, url: str) -> str:
    """The exception the real operator raises (what the task's failure shows)."""
    from airflow.sdk.exceptions import AirflowFailException

    from talklog_airflow.operators.imports import ImportExportOperator

    operator = ImportExportOperator(task_id="import_export", path=path, import_folder=str(folder))
    with pytest.raises(AirflowFailException) as failure:
        operator.execute({"run_id": "manual"})
    return f"{failure.value}\n{failure.value!r}\n{failure.getrepr()}"


def messages(url: str) -> list[tuple[str, str | None, str | None]]:
    with make_session_factory(url)() as session:
        rows = session.execute(sa.select(Message.message_type, Message.text, Message.file_name))
        return [tuple(r) for r in rows]


def quarantined(url: str) -> list[tuple[str, str, str]]:
    with make_session_factory(url)() as session:
        rows = quarantine.open_rows(session, quarantine.Source.IMPORT)
        return [(r.record_key, r.reason_code, r.reason) for r in rows]


def _log_files() -> dict[str, str]:
    logs = Path(os.environ["AIRFLOW_HOME"]) / "logs"
    files = [path for path in logs.rglob("*") if path.is_file()] if logs.exists() else []
    return {str(path): path.read_text(errors="replace") for path in files}


def check(case: ImportCase, url: str, outcome: Seen, paths: list[str]) -> None:
    """The case's row of the table, and no output holding the marker."""
    stored = messages(url)
    everything = "\n".join(outcome.outputs.values())
    if case.outcome is Outcome.REFUSED:
        assert outcome.error is not None and outcome.summary is None
        assert case.reason in everything, everything[-3000:]
        assert stored == []
        return
    assert outcome.error is None, everything[-3000:]
    summary = outcome.summary
    assert summary is not None
    assert summary["rows_read"] == (
        summary["inserted"] + summary["duplicates_skipped"] + summary["rejected"]
    )
    lines = [r["line"] for r in summary["rejected_rows"]]
    assert lines == list(case.lines)
    assert all(case.reason in r["reason"] for r in summary["rejected_rows"]), summary
    name = Path(paths[-1]).name
    assert summary["quarantined"] == len(case.lines)
    assert [key for key, _, _ in quarantined(url)] == [f"{name}:{line}" for line in case.lines]
    if case.stored is not None:
        assert len(stored) == case.stored
    if case.talk is not None:
        assert len(stored) == 3 and stored.count(case.talk) == 1, stored


@pytest.mark.parametrize(("case", "database"), STORE_CASES)
def test_bad_import_through_the_importer(case, database, request, places, capfd, caplog):
    folder, outside = places
    url = _store(request, database)
    paths = case.files(folder, outside)
    outcome = run_importer(url, folder, paths)
    out, err = capfd.readouterr()
    outcome.outputs |= {"exception": outcome.error or "", "summary": json.dumps(outcome.summary)}
    outcome.outputs |= {"stdout": out, "stderr": err, "log records": caplog.text}
    outcome.outputs["quarantine"] = repr(quarantined(url))
    check(case, url, outcome, paths)
    for where, text in outcome.outputs.items():
        assert MARKER not in text, f"file content leaked into {where}"


@pytest.fixture(scope="module")
def import_dag():
    return DagBag(dag_folder=str(REPO / "dags")).dags["talklog_import_export"]


@pytest.mark.parametrize("case", DAG_CASES, ids=[case.name for case in DAG_CASES])
def test_bad_import_through_the_dag(
    case, airflow_db, import_dag, sqlite_url, places, monkeypatch, capfd, caplog
):
    folder, outside = places
    upgrade(sqlite_url)
    conn = {"conn_type": "talklog_store", "extra": {"sqlalchemy_url": sqlite_url}}
    monkeypatch.setenv("AIRFLOW_CONN_TALKLOG_STORE", json.dumps(conn))
    paths = case.files(folder, outside)
    outcome = run_dag(import_dag, folder, paths, monkeypatch)
    if case.outcome is Outcome.REFUSED:
        outcome.outputs["exception"] = operator_refusal(folder, paths[-1], sqlite_url)
    out, err = capfd.readouterr()
    outcome.outputs |= _log_files() | {"summary": json.dumps(outcome.summary)}
    outcome.outputs |= {"stdout": out, "stderr": err, "log records": caplog.text}
    outcome.outputs["quarantine"] = repr(quarantined(sqlite_url))
    check(case, sqlite_url, outcome, paths)
    for where, text in outcome.outputs.items():
        assert MARKER not in text, f"file content leaked into {where}"


def test_room_reuse_stores_nothing_of_the_other_pair(sqlite_url, places):
    """The reused 1:1 room keeps its two members, none backdated; the other pair's users are
    created only by the row that is stored (the new room), not by the rejected ones."""
    folder, outside = places
    upgrade(sqlite_url)
    case = next(c for c in CASES if c.name == "room id reused in a later export")
    run_importer(sqlite_url, folder, case.files(folder, outside))
    with make_session_factory(sqlite_url)() as session:
        room = session.get(Room, "ch-reuse")
        members = session.scalars(
            sa.select(RoomMember).where(RoomMember.room_id == "ch-reuse")
        ).all()
        senders = session.scalars(
            sa.select(Message.sender_lw_user_id).where(Message.room_id == "ch-reuse")
        ).all()
    assert room.room_type == "one_to_one" and len(members) == 2
    assert {m.lw_user_id for m in members} == {"suzuki@example.co.jp", None}
    assert senders == ["suzuki@example.co.jp"] * 2


def test_reimport_after_the_cause_is_fixed_resolves_the_quarantine(sqlite_url, places):
    folder, _ = places
    upgrade(sqlite_url)
    path = write(folder, "fix.csv", export(row(0), row(1, when="0001/01/01 00:00:00")))
    import_export(make_session_factory(sqlite_url), path)
    assert [key for key, _, _ in quarantined(sqlite_url)] == ["fix.csv:3"]
    path.write_bytes(export(row(0), row(1)))
    summary = import_export(make_session_factory(sqlite_url), path)
    assert (summary.inserted, summary.duplicates, summary.quarantined) == (1, 1, 0)
    assert quarantined(sqlite_url) == []


REFUSALS = {
    # at the insert: a trigger, as a full disk or a constraint would
    "at insert": (
        "CREATE TRIGGER refuse BEFORE INSERT ON messages WHEN NEW.text LIKE '%#2200'"
        " BEGIN SELECT RAISE(ABORT, 'refused'); END",
    ),
    # only at COMMIT, which runs in the importer's commit thread: a deferred foreign key, as
    # a server-side check at commit would
    "at commit": (
        "CREATE TABLE commit_parent (id TEXT PRIMARY KEY)",
        "CREATE TABLE commit_child (ref TEXT REFERENCES commit_parent (id)"
        " DEFERRABLE INITIALLY DEFERRED)",
        "CREATE TRIGGER refuse_at_commit AFTER INSERT ON messages"
        " WHEN NEW.text LIKE '%#2200' BEGIN INSERT INTO commit_child VALUES ('none'); END",
    ),
}


@pytest.mark.parametrize("refusal", list(REFUSALS))
def test_a_store_failure_after_committed_chunks_says_what_is_stored_and_where_to_resume(
    refusal, sqlite_url, places, capfd, caplog
):
    """The store refuses the third chunk, at its insert or only at its commit: the error
    names the chunk's lines, counts the rows stored and names the line to resume from,
    without content; nothing of the refused chunk is stored."""
    folder, _ = places
    upgrade(sqlite_url)
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as connection:
        for statement in REFUSALS[refusal]:
            connection.execute(sa.text(statement))
    engine.dispose()
    records = [row(i % 600, f"{TEXT} #{i}") for i in range(2_500)]
    path = write(folder, "big.csv", export(*records))
    with pytest.raises(ImportStoreError) as failure:
        import_export(make_session_factory(sqlite_url), path, chunk_rows=1_000)
    text = f"{failure.value}"
    assert "the rows of lines 2002-2501" in text, text
    assert "2,000 rows stored" in text and "resume from line 2002" in text, text
    assert len(messages(sqlite_url)) == 2_000
    out, err = capfd.readouterr()
    for where, output in {"error": text, "out": out + err, "logs": caplog.text}.items():
        assert MARKER not in output, where


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if c.name in {"header with content", "undecodable header", "year 0"}],
    ids=lambda case: case.name,
)
def test_cli_import_shows_reasons_never_content(case, sqlite_url, places, capsys):
    folder, outside = places
    (path,) = case.files(folder, outside)
    argv = ["import", "--url", sqlite_url, "--file", str(folder / path), "--upgrade"]
    if case.outcome is Outcome.REFUSED:
        with pytest.raises(SystemExit) as failure:
            cli(argv)
        shown = str(failure.value.code)
    else:
        cli(argv)
        shown = capsys.readouterr().out
    assert case.reason in shown and MARKER not in shown
    assert MARKER not in "".join(capsys.readouterr())
