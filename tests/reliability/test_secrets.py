"""Secrets and privacy (issue 9): the DAGs run through `dag.test()` with a known client secret,
password, security token and message text; none of them appears in a task log, in captured
output or in an exception, and the emulator never logs a request body.

SOQL injection is tried end to end: names and keys with quotes and backslashes go through the
link sync, a talk-log run and a re-link, and every query finds exactly its own record.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pendulum
import pytest
import sqlalchemy as sa
from airflow.dag_processing.dagbag import DagBag

from talklog.salesforce.soql import quote
from talklog.store import make_session_factory
from talklog.store.migrate import upgrade
from talklog.store.models import Message
from talklog_dev.emulator.process import EmulatorHandle, run_emulator
from talklog_dev.synth.examples import write_examples

pytestmark = pytest.mark.reliability
REPO = Path(__file__).resolve().parents[2]
TOKYO = "Asia/Tokyo"
SECRET = f"client-secret-{uuid.uuid4().hex}"
PASSWORD = f"pass-{uuid.uuid4().hex[:16]}"
SECURITY_TOKEN = f"tok{uuid.uuid4().hex[:12]}"
MESSAGE = f"confidential-talk-{uuid.uuid4().hex}"
AT = pendulum.datetime(2026, 1, 10, 11, tz=TOKYO)


@pytest.fixture(scope="module")
def private_emulator(tmp_path_factory) -> Iterator[tuple[EmulatorHandle, Path]]:
    """An emulator of our own, with the known secret and password (+ security token)."""
    workdir = tmp_path_factory.mktemp("secret-emulator")
    env = {
        "TALKLOG_EMULATOR_CLIENT_SECRET": SECRET,
        "TALKLOG_EMULATOR_PASSWORD": PASSWORD + SECURITY_TOKEN,
    }
    with run_emulator(workdir, env=env) as handle:
        yield handle, workdir / "emulator.log"


def _password_flow_connection(handle: EmulatorHandle, password: str) -> str:
    """`salesforce_default` with the OAuth username-password flow (password + token)."""
    extra = {
        "ca_bundle": handle.ca_bundle,
        "version": "66.0",
        "consumer_key": handle.client_id,
        "consumer_secret": SECRET,
        "security_token": SECURITY_TOKEN,
    }
    connection = {
        "conn_type": "salesforce",
        "host": handle.instance_url,
        "login": handle.username,
        "password": password,
        "extra": extra,
    }
    return json.dumps(connection)


@pytest.fixture
def store(private_emulator, tmp_path, monkeypatch) -> str:
    handle, _ = private_emulator
    handle.reset()
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    target = handle.create_record("ExternalContact__c", Name="山田 太郎")
    write_examples(url, pendulum.date(2026, 1, 9), {"yamada": target, "sato": target})
    with make_session_factory(url).begin() as session:
        session.execute(
            sa.update(Message).where(Message.message_type == "text").values(text=MESSAGE)
        )
    monkeypatch.setenv("AIRFLOW_CONN_TALKLOG_STORE", json.dumps({
        "conn_type": "talklog_store", "extra": {"sqlalchemy_url": url},
    }))  # fmt: skip
    monkeypatch.setenv("TALKLOG_LINK_SOURCE", "store")  # the examples' links are the store's
    return url


def _secrets() -> dict[str, str]:
    return {
        "client secret": SECRET,
        "password": PASSWORD,
        "security token": SECURITY_TOKEN,
        "message text": MESSAGE,
    }


def _log_files() -> list[Path]:
    """Task log files (`dag.test()` logs to stdout, which is checked as well)."""
    logs = Path(os.environ["AIRFLOW_HOME"]) / "logs"
    return [path for path in logs.rglob("*") if path.is_file()] if logs.exists() else []


def _assert_nothing_leaks(texts: dict[str, str]) -> None:
    for where, text in texts.items():
        for name, secret in _secrets().items():
            assert secret not in text, f"{name} leaked into {where}"
        assert "Bearer " not in text, f"an access token leaked into {where}"


def _hook_failure() -> str:
    """The text and repr of the hook's login failure (with the wrong password set)."""
    from talklog_airflow.hooks.salesforce import TalkLogSalesforceHook

    with pytest.raises(Exception, match="token request") as failure:
        _ = TalkLogSalesforceHook().conn
    return f"{failure.value}\n{failure.value!r}\n{failure.getrepr()}"


def test_dag_runs_leak_no_secret_and_no_message_text(
    airflow_db, private_emulator, store, monkeypatch, capfd, caplog
):
    handle, emulator_log = private_emulator
    dags = DagBag(dag_folder=str(REPO / "dags")).dags
    conn = _password_flow_connection(handle, PASSWORD)
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", conn)
    assert dags["talklog_link_sync"].test(logical_date=AT).state == "success"
    assert dags["talklog_hourly"].test(logical_date=AT).state == "success"
    transcripts = [row["Transcript__c"] for row in handle.records("TalkLog__c")]
    assert transcripts and all(MESSAGE in text for text in transcripts)  # it was written

    wrong = _password_flow_connection(handle, "wrong-" + PASSWORD)
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", wrong)
    hourly = dags["talklog_hourly"]
    for task in hourly.tasks:
        task.retries = 0  # dag.test() would wait out the retry delays
    failed = hourly.test(logical_date=AT.add(hours=1))
    assert failed.state == "failed"

    out, err = capfd.readouterr()
    texts = {str(path): path.read_text(errors="replace") for path in _log_files()}
    texts |= {"stdout": out, "stderr": err, "log records": caplog.text}
    texts["exception"] = _hook_failure()
    assert "token request" in texts["log records"] + out + err  # the failure is explained
    _assert_nothing_leaks(texts)
    served = [
        line for line in emulator_log.read_text(errors="replace").splitlines()
        if not line.startswith('{"instance_url"')  # the ready line prints the secret by design
    ]  # fmt: skip
    _assert_nothing_leaks({"emulator log": "\n".join(served)})


@pytest.mark.parametrize(
    "name",
    [
        "O'Brien",
        "back\\slash",
        "x' OR Name != 'x",
        "x\\' OR Name != \\'x",
        "quote \" and ' both",
        "line\nbreak\ttab",
        "%_ wildcards",
    ],
)
def test_soql_literals_find_exactly_their_record(private_emulator, name):
    handle, _ = private_emulator
    handle.reset()
    wanted = handle.create_record("ExternalContact__c", Name=name)
    handle.create_record("ExternalContact__c", Name="someone else")
    rows = handle.salesforce().query_all(
        f"SELECT Id, Name FROM ExternalContact__c WHERE Name = {quote(name)}"
    )["records"]
    assert [(row["Id"], row["Name"]) for row in rows] == [(wanted, name)]


@pytest.mark.postgres
def test_cli_commands_never_print_the_store_password(postgres_url, tmp_path, capsys):
    """Every command that takes `--url` gets one with a password; no output carries it."""
    from talklog import cli
    from talklog_dev import cli as dev_cli

    url = sa.make_url(postgres_url).set(password=PASSWORD).render_as_string(hide_password=False)
    export = tmp_path / "export.csv"
    export.write_text("日時,送信者,受信者,チャンネルID,トーク\n", encoding="utf-8")
    cli.main(["store", "upgrade", "--url", url])
    dev_cli.main(["generate", "--url", url, "--messages", "50", "--days", "1"])
    cli.main(["store", "describe", "--url", url])
    cli.main(["dead-letters", "--url", url])
    cli.main(["trace", "--url", url, "--message", "no-such-message"])
    cli.main(["import", "--url", url, "--file", str(export)])
    out = capsys.readouterr()
    assert "store at" in out.out and "wrote 50 messages" in out.out
    assert PASSWORD not in out.out + out.err
    assert "***" in out.out


@pytest.mark.parametrize("where", ["outside the folder", ".env inside it", "traversal"])
def test_import_dag_refuses_files_outside_its_folder_and_leaks_none(
    where, airflow_db, sqlite_url, tmp_path, monkeypatch, capfd, caplog
):
    """The import DAG on a path outside its import folder, or on a `.env` inside it: refused
    with the rule it broke, nothing imported, no secret of the file in a log or an error."""
    folder, outside = tmp_path / "imports", tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    secrets = f"SECRET={SECRET}\nPASSWORD={PASSWORD}\nTOKEN={SECURITY_TOKEN}\n"
    export = f"日時,送信者,受信者,チャンネルID,トーク\n2026/01/09 10:00:00,a,b,ch,{MESSAGE}\n"
    (folder / ".env").write_text(secrets)
    (outside / "export.csv").write_text(export)
    path, rule = {
        "outside the folder": (str(outside / "export.csv"), "outside the import folder"),
        ".env inside it": (".env", "hidden"),
        "traversal": ("../outside/export.csv", "'..'"),
    }[where]
    upgrade(sqlite_url)
    store = {"conn_type": "talklog_store", "extra": {"sqlalchemy_url": sqlite_url}}
    monkeypatch.setenv("AIRFLOW_CONN_TALKLOG_STORE", json.dumps(store))
    monkeypatch.setenv("TALKLOG_IMPORT_FOLDER", str(folder))
    dag = DagBag(dag_folder=str(REPO / "dags")).dags["talklog_import_export"]
    assert dag.test(run_conf={"path": path}).state == "failed"
    with make_session_factory(sqlite_url)() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Message)) == 0

    out, err = capfd.readouterr()
    texts = {str(path): path.read_text(errors="replace") for path in _log_files()}
    texts |= {"stdout": out, "stderr": err, "log records": caplog.text}
    assert rule in out + err + caplog.text  # the refusal says which rule was broken
    _assert_nothing_leaks(texts)
