"""`make demo`: the main job end to end on the embedded defaults.

A realistic message store (SQLite), the local Salesforce emulator with the linked customers'
records, then Airflow itself (`dag.test()`, SQLite metadata) runs the link sync and the hourly,
6-hourly and daily talk-log DAGs over consecutive windows. Prints what each run wrote and one
sample transcript, and stops everything it started.

    python -m talklog_dev.demo      (`make demo`)
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pendulum

from talklog.store.models import TargetType
from talklog_dev.demo_store import (
    DEMO_CONFIG,
    DEMO_DIR,
    REPO_ROOT,
    TIME_ZONE,
    fresh_store,
    print_generation,
)
from talklog_dev.emulator.process import EmulatorHandle, run_emulator
from talklog_dev.synth.generator import generate

DAGS_FOLDER = REPO_ROOT / "dags"
TARGET_OBJECTS: dict[TargetType, Callable[[int], tuple[str, dict[str, Any]]]] = {
    TargetType.EXTERNAL_CONTACT: lambda n: ("ExternalContact__c", {"Name": f"外部連絡先 {n}"}),
    TargetType.LEAD: lambda n: ("Lead", {"LastName": f"リード {n}", "Company": f"株式会社{n}"}),
    TargetType.CONTACT: lambda n: ("Contact", {"LastName": f"取引先責任者 {n}"}),
    TargetType.PERSON_ACCOUNT: lambda n: ("Account", {"LastName": f"個人 {n}"}),
}


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
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        }
    )


def salesforce_records(sf: EmulatorHandle) -> tuple[Callable, Callable]:
    """Callables for the generator that create the linked records and users in the emulator."""

    def target_id(kind: TargetType, n: int) -> str:
        sobject, values = TARGET_OBJECTS[kind](n)
        return sf.create_record(sobject, **values)

    def user_id(n: int) -> str:
        return sf.create_record("User", Username=f"staff{n}@talklog.example", LastName=f"担当{n}")

    return target_id, user_id


def connections(sf: EmulatorHandle, store_url: str) -> None:
    os.environ.update(sf.airflow_conn_env())
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


def run_dags(sf: EmulatorHandle, last_day: dt.date) -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.xcom import XComModel
    from airflow.utils import db
    from airflow.utils.session import create_session

    print("\nMigrating the demo's Airflow metadata DB (SQLite)...")
    db.resetdb()
    dags = DagBag(dag_folder=str(DAGS_FOLDER)).dags
    print(f"{'DAG':<24} {'talk window':<42} {'msgs':>5} {'TalkLogs written':>17}"
          f" {'Tasks written':>14} {'rejected':>8} {'quarantined':>11} {'API calls':>9}"
          f" {'pairs already sent':>18}")  # fmt: skip
    for dag_id, logical_date in runs_to_show(last_day):
        before = sf.stats()["total_api_calls"]
        run = dags[dag_id].test(logical_date=logical_date)
        task_id = "sync_links" if dag_id.endswith("link_sync") else "write_talk_logs"
        query = XComModel.get_many(
            run_id=run.run_id, key="return_value", dag_ids=dag_id, task_ids=task_id
        )
        with create_session() as session:
            row = session.scalars(query).first()
            value = XComModel.deserialize_value(row) if row else {}
        print_run(dag_id, run.state, value, sf.stats()["total_api_calls"] - before)


def print_run(dag_id: str, state: str, summary: dict[str, Any], calls: int) -> None:
    if dag_id.endswith("link_sync"):
        lw, exchange = summary.get("linkworks", {}), summary.get("exchange_tasks", {})
        linkworks = f"LineWorks {lw.get('written', 0)}"
        rejected = lw.get("rejected", 0) + exchange.get("rejected", 0)
        print(f"{dag_id:<24} {'links changed: ' + str(summary.get('links', 0)):<42} {'':>5}"
              f" {linkworks:>17} {exchange.get('written', 0):>14} {rejected:>8} {'':>11}"
              f" {calls:>9} {'':>18}  {state}")  # fmt: skip
        return
    tl, tasks = summary.get("talklogs", {}), summary.get("tasks", {})
    print(f"{dag_id:<24} {summary.get('window_label', '?'):<42} {summary.get('messages', 0):>5}"
          f" {tl.get('written', 0):>17} {tasks.get('written', 0):>14}"
          f" {summary.get('rejected', 0):>8} {summary.get('quarantined', 0):>11} {calls:>9}"
          f" {summary.get('pairs_owned_by_other_windows', 0):>18}  {state}")  # fmt: skip


def print_sample(sf: EmulatorHandle) -> None:
    talklogs = sorted(sf.records("TalkLog__c"), key=lambda r: -int(float(r["MessageCount__c"])))
    tasks = [t for t in sf.records("Task") if t.get("LineWorksKind__c") == "TalkLog"]
    print(f"\nSalesforce now holds {len(talklogs)} TalkLog__c records, {len(tasks)} LINE WORKSログ"
          f" Tasks and {len(sf.records('LineWorks__c'))} LineWorks__c records.")  # fmt: skip
    if talklogs:
        sample = next((r for r in talklogs if int(float(r["MessageCount__c"])) <= 12), talklogs[0])
        print(f"\nSample transcript ({sample['TalkLogKey__c']}):")
        lines = sample["Transcript__c"].splitlines()
        for line in lines[:16]:
            print(f"  | {line[:110]}")
        if len(lines) > 16:
            print(f"  | ... ({len(lines) - 16} more lines)")


def main() -> None:
    airflow_environment(DEMO_DIR / "airflow")
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    url = fresh_store(DEMO_DIR)
    print(f"Demo store: {url}")
    with run_emulator(DEMO_DIR / "emulator", "--bulk-polls", "1") as sf:
        print(f"Salesforce emulator: {sf.instance_url} (pid {sf.pid})")
        target_id, user_id = salesforce_records(sf)
        config = DEMO_CONFIG.replace(target_ids=target_id, salesforce_user_ids=user_id)
        print_generation(generate(url, config))
        connections(sf, url)
        run_dags(sf, config.day + dt.timedelta(days=config.days - 1))
        print_sample(sf)
        print(f"\nEmulator API calls by endpoint: {sf.stats()['api_calls']}")
    print("Stopped the emulator. Demo files are in var/demo/.")
    print(
        "'pairs already sent': (message, customer) pairs another window had delivered; the"
        " delivery ledger keeps each message on each record once across schedules."
        " 'quarantined': store rows a run could not read (listed by check_dead_letters)."
    )


if __name__ == "__main__":
    main()
