"""`make demo`: the main job end to end, LINE WORKS emulator -> store -> Salesforce emulator.

Two local emulators on 127.0.0.1: LINE WORKS (filled from the synthetic generator: staff,
LINE contacts and 4 days of talk) and Salesforce (the linked customers' records and the staff's
users). The store (SQLite) starts with the same world's rooms and links but no message. Then
Airflow itself (`dag.test()`, SQLite metadata, `TALKLOG_TALK_SOURCE=lineworks`) runs the link
sync (directory sync first) and the hourly, 6-hourly and daily talk-log DAGs over consecutive
windows: each run downloads its window from LINE WORKS, waits until it is covered and writes
it. Prints one table of what each run moved, writes one sample transcript to a file (no talk
is printed) and stops both emulators by process id.

    python -m talklog_dev.demo      (`make demo`)
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pendulum
import sqlalchemy as sa

from talklog.store import make_session_factory
from talklog.store.models import LineWorksUser, Message, TargetType
from talklog.transcripts import TALKLOG_LIMIT, TASK_DESCRIPTION_LIMIT
from talklog_dev.demo_store import DEMO_CONFIG, DEMO_DIR, REPO_ROOT, TIME_ZONE, fresh_store
from talklog_dev.emulator.process import EmulatorHandle, run_emulator
from talklog_dev.lineworks_emulator.process import LineWorksEmulatorHandle, run_lineworks_emulator
from talklog_dev.synth.generator import GeneratorConfig, generate
from talklog_dev.synth.lineworks import lineworks_world

DAGS_FOLDER = REPO_ROOT / "dags"
SAMPLE_FILE = DEMO_DIR / "sample-transcript.txt"
TARGET_OBJECTS: dict[TargetType, Callable[[int], tuple[str, dict[str, Any]]]] = {
    TargetType.EXTERNAL_CONTACT: lambda n: ("ExternalContact__c", {"Name": f"外部連絡先 {n}"}),
    TargetType.LEAD: lambda n: ("Lead", {"LastName": f"リード {n}", "Company": f"株式会社{n}"}),
    TargetType.CONTACT: lambda n: ("Contact", {"LastName": f"取引先責任者 {n}"}),
    TargetType.PERSON_ACCOUNT: lambda n: ("Account", {"LastName": f"個人 {n}"}),
}
SHOWN_STATES = {"success": "ok", "failed": "failed", "upstream_failed": "-"}
TALK_TASKS = ("ingest_talks", "write_talk_logs", "check_api_budget")
LINK_TASKS = ("sync_directory", "sync_links")
TABLE_HEADERS = (
    "DAG", f"talk window\n({DEMO_CONFIG.day.year}, {TIME_ZONE})", "talks\ndownloaded",
    "messages\nnew", "messages\nknown", "rows\nquarantined", "TalkLogs\nwritten", "Tasks\nwritten",
    "Salesforce\nAPI calls", "write", "check",
)  # fmt: skip
LEGEND = f"""\
talks downloaded: rows of the run's LINE WORKS download (its window plus 5 minutes either side,
  bot posts left out); messages new / known: stored now / already stored by an earlier,
  overlapping download (the store keeps each message once, also across schedules).
rows quarantined: talk rows the directory could not place (a customer named only by a display
  name several LINE users share: never guessed) plus store rows a run could not read; they are
  left out and kept in the store's quarantine table, and check_dead_letters fails, naming each,
  while any is open. The rest of the window is written.
TalkLogs / Tasks written: records, one per part of a transcript: parts of at most
  {TALKLOG_LIMIT:,} characters for a TalkLog__c, {TASK_DESCRIPTION_LIMIT:,} for a Task's Description
  (TALKLOG_TASK_COPY=full, the default). A transcript over {TASK_DESCRIPTION_LIMIT:,} characters is
  one TalkLog and two or more Tasks: a window can have more Tasks than TalkLogs.
Salesforce API calls: the run's own count (write_talk_logs' api_calls, as in the console);
  check_api_budget then reads /limits once more."""


def airflow_environment(home: Path) -> None:
    """A private Airflow home (SQLite metadata) for the demo; set before Airflow is imported."""
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "TALKLOG_TALK_SOURCE": "lineworks",
            "TALKLOG_TIMEZONE": TIME_ZONE,
            "TALKLOG_OWNER_MATCH": "email",
            "TALKLOG_LINK_SOURCE": "store",  # the generator authors the world's links in the store
        }
    )
    # Task failures are in the table; AIRFLOW__LOGGING__LOGGING_LEVEL=ERROR shows their logs.
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "CRITICAL")


def quiet_warnings() -> None:
    """Library deprecation notices are not the demo's output (Airflow logs them as warnings)."""
    warnings.simplefilter("ignore")
    logging.basicConfig(level=logging.ERROR)


def lineworks_args(config: GeneratorConfig) -> list[str]:
    """The emulator's world: the generator's, with the demo's seed and sizes."""
    return [
        "--seed", str(config.seed), "--day", config.day.isoformat(), "--days", str(config.days),
        "--messages", str(config.messages), "--staff", str(config.n_staff),
        "--customers", str(config.n_customers), "--rooms", str(config.n_rooms),
        "--tz", config.tz, "--quiet-day-share", str(config.quiet_day_share),
    ]  # fmt: skip


def target_ids(sf: EmulatorHandle) -> Callable[[TargetType, int], str]:
    """For the generator: creates each linked record in the Salesforce emulator."""

    def target_id(kind: TargetType, n: int) -> str:
        sobject, values = TARGET_OBJECTS[kind](n)
        return sf.create_record(sobject, **values)

    return target_id


def store_world(url: str, config: GeneratorConfig) -> None:
    """The world's people, rooms and links in the store; its messages only in LINE WORKS."""
    report = generate(url, config)
    with make_session_factory(url).begin() as session:
        session.execute(sa.delete(Message))
    print(
        f"Store: {report.lw_users} staff, {report.line_users} LINE customers,"
        f" {sum(report.rooms_by_type.values())} rooms, {sum(report.links_by_target.values())}"
        " links; no message yet."
    )
    print(
        f"LINE WORKS holds their {report.messages:,} messages"
        f" ({report.start:%Y-%m-%d %H:%M} to {report.end:%Y-%m-%d %H:%M} UTC)."
    )


def staff_users(sf: EmulatorHandle, url: str, config: GeneratorConfig) -> None:
    """A Salesforce user with the login email of each staff member the generator gives one
    (some have none); runs find them by email (`TALKLOG_OWNER_MATCH=email`)."""
    emails = {user["userId"]: user["email"] for user in lineworks_world(config).users}
    with make_session_factory(url)() as session:
        staff = session.execute(
            sa.select(LineWorksUser.id, LineWorksUser.display_name)
            .where(LineWorksUser.salesforce_user_id.is_not(None))
            .order_by(LineWorksUser.id)
        ).all()
    users = [{"Username": emails[i], "Email": emails[i], "LastName": name} for i, name in staff]
    sf.create_records("User", users)
    print(f"Salesforce: {len(users)} of {len(emails)} staff have a user (found by email).")


def connections(sf: EmulatorHandle, lw: LineWorksEmulatorHandle, store_url: str) -> None:
    os.environ.update({**sf.airflow_conn_env(), **lw.airflow_conn_env()})
    store = {"conn_type": "talklog_store", "extra": {"sqlalchemy_url": store_url}}
    os.environ["AIRFLOW_CONN_TALKLOG_STORE"] = json.dumps(store)


def runs_to_show(last_day: dt.date) -> list[tuple[str, pendulum.DateTime]]:
    """(DAG, logical date) pairs: the run at that time writes the talks of 24 h earlier."""
    day = pendulum.date(last_day.year, last_day.month, last_day.day).add(days=1)
    at = lambda hour: pendulum.datetime(day.year, day.month, day.day, hour, tz=TIME_ZONE)  # ruff: ignore[lambda-assignment]
    hourly = [("talklog_hourly", at(hour)) for hour in (10, 11, 12, 13)]
    six_hourly = [("talklog_every_6_hours", at(hour)) for hour in (7, 13)]
    daily = [("talklog_daily", at(1).add(days=1))]
    return [("talklog_link_sync", at(0).add(days=1)), *hourly, *six_hourly, *daily]


def returned(run: Any, task_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Each task's return value (XCom) in `run`, by task id ({} when it returned nothing)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    values: dict[str, dict[str, Any]] = {}
    with create_session() as session:
        for task_id in task_ids:
            query = XComModel.get_many(
                run_id=run.run_id, key="return_value", dag_ids=run.dag_id, task_ids=task_id
            )
            row = session.scalars(query).first()
            values[task_id] = XComModel.deserialize_value(row) if row else {}
    return values


def run_dags(sf: EmulatorHandle, last_day: dt.date) -> int:
    """Run the demo's DAGs in order and print what they did; their Salesforce API calls by
    their own counts (the jobs' `api_calls` and one `/limits` read per budget check)."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils import db

    print("\nMigrating the demo's Airflow metadata DB (SQLite)...")
    db.resetdb()
    quiet_warnings()  # again: importing Airflow resets the filters
    dags = DagBag(dag_folder=str(DAGS_FOLDER)).dags
    rows: list[list[Any]] = []
    owned_by_integration_user = calls = 0
    for dag_id, logical_date in runs_to_show(last_day):
        run = dags[dag_id].test(logical_date=logical_date)
        if dag_id.endswith("link_sync"):
            values = returned(run, LINK_TASKS)
            calls += int(values["sync_links"].get("api_calls") or 0)
            print_link_sync(values, run.state)
            continue
        values = returned(run, TALK_TASKS)
        calls += int(values["write_talk_logs"].get("api_calls") or 0)
        calls += 1 if values["check_api_budget"] else 0  # its one /limits read
        rows.append(talk_row(dag_id, values, task_states(run)))
        owned = values["write_talk_logs"].get("tasks_owned_by_integration_user", {})
        owned_by_integration_user += sum(owned.values())
    print_table(rows, owned_by_integration_user)
    return calls


def print_link_sync(values: dict[str, dict[str, Any]], state: str) -> None:
    directory, links = values["sync_directory"], values["sync_links"]
    linkworks, exchange = links.get("linkworks", {}), links.get("exchange_tasks", {})
    print(
        f"\nLink sync ({state}): the directory sync read {directory.get('staff_read', 0)} staff"
        f" and {directory.get('contacts_read', 0)} contacts from LINE WORKS"
        f" ({directory.get('lineworks_api_calls', 0)} LINE WORKS calls);\n"
        f"  {links.get('links', 0)} links -> {linkworks.get('written', 0)} LineWorks__c records"
        f" and {exchange.get('written', 0)} exchange Tasks"
        f" ({links.get('api_calls', '?')} Salesforce API calls)."
    )


def task_states(run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def talk_row(dag_id: str, values: dict[str, dict[str, Any]], states: dict[str, str]) -> list:
    ingest, write = values["ingest_talks"], values["write_talk_logs"]
    window = str(write.get("window_label", "?")).removesuffix(f" ({TIME_ZONE})")
    window = re.sub(r"\b\d{4}-", "", window)  # the year is in the heading
    quarantined = int(ingest.get("quarantined", 0)) + int(write.get("quarantined", 0))
    return [
        dag_id.removeprefix("talklog_"),
        window,
        ingest.get("talks_downloaded", 0),
        ingest.get("messages_new", 0),
        ingest.get("messages_known", 0),
        quarantined,
        write.get("talklogs", {}).get("written", 0),
        write.get("tasks", {}).get("written", 0),
        write.get("api_calls", "?"),
        SHOWN_STATES.get(states.get("write_talk_logs", ""), "?"),
        SHOWN_STATES.get(states.get("check_dead_letters", ""), "?"),
    ]


def print_table(rows: list[list[Any]], owned_by_integration_user: int) -> None:
    from tabulate import tabulate

    print("\nTalk-log runs: each downloads its talk window from LINE WORKS, then writes it.")
    print(tabulate(rows, headers=TABLE_HEADERS, tablefmt="simple"))
    print(LEGEND)
    print(
        f"Tasks owned by the integration user (staff without an active Salesforce user):"
        f" {owned_by_integration_user}."
    )


def write_sample(sf: EmulatorHandle) -> None:
    """Totals, and one short transcript written to a file (the output shows no talk)."""
    talklogs = sorted(sf.records("TalkLog__c"), key=lambda r: -int(float(r["MessageCount__c"])))
    tasks = [t for t in sf.records("Task") if t.get("LineWorksKind__c") == "TalkLog"]
    print(f"\nSalesforce now holds {len(talklogs)} TalkLog__c records, {len(tasks)} LINE WORKSログ"
          f" Tasks and {len(sf.records('LineWorks__c'))} LineWorks__c records.")  # fmt: skip
    if talklogs:
        sample = next((r for r in talklogs if int(float(r["MessageCount__c"])) <= 12), talklogs[0])
        SAMPLE_FILE.write_text(sample["Transcript__c"] + "\n", encoding="utf-8")
        print(
            f"One transcript ({int(float(sample['MessageCount__c']))} messages):"
            f" {SAMPLE_FILE.relative_to(REPO_ROOT)}"
        )


def print_calls(sf: EmulatorHandle, lw: LineWorksEmulatorHandle, salesforce_calls: int) -> None:
    """The runs' own Salesforce count, checked against the emulator's; LINE WORKS by API."""
    counted = sf.stats()["total_api_calls"]
    check = "as the emulator counted" if counted == salesforce_calls else f"emulator: {counted}"
    calls = lw.stats()["calls"]
    by_api = ", ".join(f"{api} {n}" for api, n in sorted(calls.items()))
    print(
        f"API calls of the runs: Salesforce {salesforce_calls} ({check}),"
        f" LINE WORKS {sum(calls.values())} ({by_api})."
    )


def demo(sf: EmulatorHandle, url: str) -> None:
    """Everything between starting the emulators and stopping them."""
    config = replace(DEMO_CONFIG, target_ids=target_ids(sf))
    store_world(url, config)
    with run_lineworks_emulator(DEMO_DIR / "lineworks", *lineworks_args(config)) as lw:
        print(f"LINE WORKS emulator: {lw.base_url} (pid {lw.pid})")
        staff_users(sf, url, config)
        connections(sf, lw, url)
        calls = run_dags(sf, config.day + dt.timedelta(days=config.days - 1))
        write_sample(sf)
        print_calls(sf, lw, calls)
    print(f"Stopped the LINE WORKS emulator (pid {lw.pid}).")


def main() -> None:
    airflow_environment(DEMO_DIR / "airflow")
    quiet_warnings()
    url = fresh_store(DEMO_DIR)
    print(f"Demo store: {url}")
    paced = ("--bulk-pace", "30s", "--time-scale", "100")  # a 30 s job in 0.3 s
    with run_emulator(DEMO_DIR / "emulator", *paced) as sf:
        print(f"Salesforce emulator: {sf.instance_url} (pid {sf.pid})")
        demo(sf, url)
    print(f"Stopped the Salesforce emulator (pid {sf.pid}). Demo files are in var/demo/.")


if __name__ == "__main__":
    main()
