"""The project's DAGs: one skeleton (`project_dag`), a few lines of builder per job; the three
talk-log DAGs differ only by schedule.

Nothing here does I/O at parse time: settings come from environment variables with defaults,
connections are read when a task runs. Nor does a parse import the domain's heavy modules
(pandas, the store's ORM, simple-salesforce, requests, lark): operators, hooks and tasks import
them when they run (tests/dag_validation guards this).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import pendulum
from airflow.sdk import DAG, BaseOperator, CronDataIntervalTimetable, Param, task
from airflow.sdk.exceptions import AirflowFailException

from talklog.settings import TaskCopy
from talklog.windows import DEFAULT_TIMEZONE, ScheduleChoice, talk_window
from talklog_airflow.alerts import TalkLogAlertNotifier, check_api_budget
from talklog_airflow.hooks.store import MessageStoreHook
from talklog_airflow.operators.imports import ImportExportOperator
from talklog_airflow.operators.ingest import (
    LINEWORKS_CONN_ID,
    IngestTalksOperator,
    SyncDirectoryOperator,
    TalkWindowCoveredSensor,
)
from talklog_airflow.operators.talklog import (
    SALESFORCE_DEFAULT_CONN_ID,
    RelinkOperator,
    ReplayDeadLettersOperator,
    SyncLinksOperator,
    WriteTalkLogsOperator,
)

TIMEZONE = os.environ.get("TALKLOG_TIMEZONE", DEFAULT_TIMEZONE)
TASK_COPY = os.environ.get("TALKLOG_TASK_COPY", TaskCopy.FULL.value)
STORE_CONN_ID = os.environ.get("TALKLOG_STORE_CONN_ID", MessageStoreHook.default_conn_name)
SALESFORCE_CONN_ID = os.environ.get("TALKLOG_SALESFORCE_CONN_ID", SALESFORCE_DEFAULT_CONN_ID)
LINK_SYNC_CRON = os.environ.get("TALKLOG_LINK_SYNC_CRON", "*/10 * * * *")
RELINK_CRON = os.environ.get("TALKLOG_RELINK_CRON", "30 * * * *")
# Where the store's talks come from: "lineworks" (each talk-log run downloads its window from
# the Monitoring API first; directory sync and history DAGs), "import" (exports imported with
# `talklog import --covers`: runs wait until their window is covered), "store" (filled by
# another system: no wait).
TALK_SOURCE = os.environ.get("TALKLOG_TALK_SOURCE", "store").strip().lower() or "store"
TALK_SOURCES = ("lineworks", "import", "store")
DIRECTORY_SYNC_CRON = os.environ.get("TALKLOG_DIRECTORY_SYNC_CRON", "5 * * * *")
COVERAGE_WAIT = dt.timedelta(hours=float(os.environ.get("TALKLOG_COVERAGE_WAIT_HOURS", "6")))
# Earliest window a backfill may reach (catchup is off, so it schedules nothing by itself).
START_DATE = pendulum.parse(os.environ.get("TALKLOG_START_DATE", "2024-01-01"), tz=TIMEZONE)

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "talklog",
    "retries": 3,
    "retry_delay": dt.timedelta(minutes=2),
    "retry_exponential_backoff": True,
    "max_retry_delay": dt.timedelta(minutes=30),
    "execution_timeout": dt.timedelta(hours=2),
    # Webhook (connection talklog_alerts) or e-mail (TALKLOG_ALERT_EMAIL); a log line otherwise.
    "on_failure_callback": TalkLogAlertNotifier(),
}


PROJECT_DAG_ARGS: dict[str, Any] = {
    "start_date": START_DATE,
    "catchup": False,  # the past is written by Airflow's backfill, on purpose
    "is_paused_upon_creation": True,  # the admin unpauses the schedule they chose
    "max_active_runs": 1,
}
CONNECTION_ARGS: dict[str, str] = {
    "store_conn_id": STORE_CONN_ID,
    "salesforce_conn_id": SALESFORCE_CONN_ID,
    "timezone": TIMEZONE,
}


def window_label(data_interval_start: Any, data_interval_end: Any) -> str:
    """The run's talk window for the UI (rendered template of the write task)."""
    return talk_window(data_interval_start, data_interval_end).label(TIMEZONE)


QUARANTINE_SHOWN = 20  # quarantined rows named in the failure (the table holds them all)


@task(task_id="check_dead_letters", multiple_outputs=False)
def check_dead_letters(summary: dict[str, Any], store_conn_id: str) -> dict[str, int]:
    """Fail (without retrying) while Salesforce-rejected rows wait as dead letters, or rows
    the project could not read wait in the quarantine (named by key and reason)."""
    from talklog import deadletters, quarantine

    with MessageStoreHook(store_conn_id).get_conn()() as session:
        open_by_code = deadletters.count_open(session)
        held = [
            f"{row.source} {row.record_key}: {row.reason_code} ({row.reason})"
            for row in quarantine.open_rows(session)
        ]
    problems = []
    if open_by_code:
        problems.append(
            f"dead letters present: {sum(open_by_code.values())} rows rejected by Salesforce "
            f"({open_by_code}); retryable ones are retried by the next run, "
            "the others wait for a replay"
        )
    if held:
        shown = "; ".join(held[:QUARANTINE_SHOWN]) + (
            "; ..." if len(held) > QUARANTINE_SHOWN else ""
        )
        problems.append(
            f"quarantined rows present: {len(held)} rows could not be read, decoded or placed"
            f" and were left out ({shown}); fix each at its source, then run its talk window"
            " (or import) again: the run that reads it resolves it"
        )
    if problems:
        raise AirflowFailException(" | ".join(problems))
    return {
        "this_run_rejected": int(summary.get("rejected", 0)),
        "this_run_quarantined": int(summary.get("quarantined", 0)),
    }


def project_dag(
    dag_id: str,
    job: Callable[[], BaseOperator],
    *,
    description: str,
    cron: str | None,
    tags: Sequence[str],
    doc_md: str,
    params: dict[str, Param] | None = None,
    default_args: Mapping[str, Any] | None = None,
    writes_salesforce: bool = True,
    checks_api_budget: bool = False,
    **dag_args: Any,
) -> DAG:
    """A project DAG running `job` (None `cron`: triggered by hand), tagged `talklog`.

    `default_args` override the project's. A job that writes to Salesforce is followed by
    `check_dead_letters` (after `check_api_budget`, when asked for).
    """
    with DAG(
        dag_id=dag_id,
        description=description,
        schedule=CronDataIntervalTimetable(cron, timezone=TIMEZONE) if cron else None,
        **PROJECT_DAG_ARGS,
        default_args={**DEFAULT_ARGS, **(default_args or {})},
        tags=["talklog", *tags],
        params=params or {},
        doc_md=doc_md,
        **dag_args,
    ) as dag:
        summary = job()
        if writes_salesforce:
            dead_letters = check_dead_letters(summary.output, store_conn_id=STORE_CONN_ID)
            if checks_api_budget:  # alerts when /limits runs low, also after a failed run
                summary >> check_api_budget(salesforce_conn_id=SALESFORCE_CONN_ID) >> dead_letters
    return dag


def talk_source() -> str:
    """`TALKLOG_TALK_SOURCE`, refused at parse time when it is none of `TALK_SOURCES`."""
    if TALK_SOURCE not in TALK_SOURCES:
        raise ValueError(
            f"TALKLOG_TALK_SOURCE must be one of {', '.join(TALK_SOURCES)}, got {TALK_SOURCE!r}"
        )
    return TALK_SOURCE


def after_ingestion(job: Callable[[], BaseOperator]) -> Callable[[], BaseOperator]:
    """`job` behind the talks of its window: downloaded first (`lineworks`), and waited for
    until covered (`lineworks`, `import`; the wait also runs when the download failed, in
    case another run covered the window); `store`: the job alone."""

    def build() -> BaseOperator:
        write = job()
        source = talk_source()
        if source == "store":
            return write
        wait = TalkWindowCoveredSensor(
            task_id="wait_for_talks",
            store_conn_id=STORE_CONN_ID,
            window_label="{{ talk_window_label(data_interval_start, data_interval_end) }}",
            timeout=COVERAGE_WAIT.total_seconds(),
            trigger_rule="all_done",
        )
        if source == "lineworks":
            ingest_talks_task() >> wait
        wait >> write
        return write

    return build


def ingest_talks_task(**period: str) -> BaseOperator:
    """The download of a run's window (or of a history `period`), one at a time (the pool)."""
    return IngestTalksOperator(
        task_id="ingest_talks",
        store_conn_id=STORE_CONN_ID,
        lineworks_conn_id=LINEWORKS_CONN_ID,
        timezone=TIMEZONE,
        **period,
    )


def build_talklog_dag(choice: ScheduleChoice) -> DAG:
    """The talk-log DAG of one admin setting (hourly, every 6 hours, daily)."""
    return project_dag(
        f"talklog_{choice.value}",
        after_ingestion(
            partial(
                WriteTalkLogsOperator,
                task_id="write_talk_logs",
                **CONNECTION_ARGS,
                task_copy="{{ params.task_copy }}",
                window_label="{{ talk_window_label(data_interval_start, data_interval_end) }}",
            )
        ),
        description=f"LINE WORKS talks -> Salesforce TalkLog__c and Tasks, {choice.value}",
        cron=choice.cron,
        tags=["salesforce", "line-works", choice.value],
        params={
            "task_copy": Param(
                TASK_COPY,
                enum=[mode.value for mode in TaskCopy],
                description=(
                    "full: transcript in the Task; no_content: Task without talk; off: no Task"
                ),
            )
        },
        doc_md=_TALKLOG_DOC.format(cron=choice.cron, timezone=TIMEZONE),
        checks_api_budget=True,
        user_defined_macros={"talk_window_label": window_label},
    )


def build_link_sync_dag() -> DAG:
    """Links and unlinks into LineWorks__c and `LINE WORKS交換` Tasks, every 10 minutes."""
    return project_dag(
        "talklog_link_sync",
        after_directory_sync(partial(SyncLinksOperator, task_id="sync_links", **CONNECTION_ARGS)),
        description="LINE WORKS links -> Salesforce LineWorks__c and exchange Tasks",
        cron=LINK_SYNC_CRON,
        tags=["salesforce", "line-works", "links"],
        doc_md="Pushes link changes since the last successful sync (a watermark in the store).",
        default_args={"execution_timeout": dt.timedelta(minutes=30)},
    )


def sync_directory_task() -> BaseOperator:
    return SyncDirectoryOperator(
        task_id="sync_directory",
        store_conn_id=STORE_CONN_ID,
        lineworks_conn_id=LINEWORKS_CONN_ID,
        timezone=TIMEZONE,
    )


def after_directory_sync(job: Callable[[], BaseOperator]) -> Callable[[], BaseOperator]:
    """`job` after the LINE WORKS directory sync (source `lineworks`), else alone."""

    def build() -> BaseOperator:
        operator = job()
        if talk_source() == "lineworks":
            sync_directory_task() >> operator
        return operator

    return build


def build_lineworks_dags() -> dict[str, DAG]:
    """With `TALKLOG_TALK_SOURCE=lineworks`: the hourly directory sync and the history
    ingestion (manual, params `from`/`to`: local dates, in 31-day downloads)."""
    if talk_source() != "lineworks":
        return {}
    directory = project_dag(
        "talklog_directory_sync",
        sync_directory_task,
        description="LINE WORKS staff and LINE contacts -> message store",
        cron=DIRECTORY_SYNC_CRON,
        tags=["line-works", "directory"],
        doc_md=(
            "Reads `/users` (whole) and `/contacts` (modified since the last sync) into the"
            " store: staff with their email, LINE users with their contact ids and the staff"
            " member each contact belongs to. The link sync runs it first too."
        ),
        default_args={"execution_timeout": dt.timedelta(minutes=30)},
        writes_salesforce=False,
    )
    history = project_dag(
        "talklog_ingest_history",
        partial(ingest_talks_task, start="{{ params['from'] }}", end="{{ params['to'] }}"),
        description="LINE WORKS talk history -> message store (backfill), 31 days per download",
        cron=None,
        tags=["line-works", "ingest"],
        params={
            "from": Param("", type="string", format="date", description="first local day"),
            "to": Param("", type="string", format="date", description="last local day"),
        },
        doc_md=(
            "Downloads the talks of `from`..`to` (local days in TALKLOG_TIMEZONE; LINE WORKS"
            " keeps 180 days) in 31-day slices, one download at a time (pool"
            " `lineworks_download`), imports them and records each slice as covered. Then"
            " backfill the talk-log DAG over the same days."
        ),
        default_args={"retries": 1},
        writes_salesforce=False,
    )
    return {dag.dag_id: dag for dag in (directory, history)}


def build_relink_dag() -> DAG:
    """Re-links at the admin's interval (default hourly): records follow the customer."""
    return project_dag(
        "talklog_relink",
        partial(RelinkOperator, task_id="relink", **CONNECTION_ARGS),
        description="Move LINE WORKS records, TalkLogs and Tasks after lead links and conversions",
        cron=RELINK_CRON,
        tags=["salesforce", "line-works", "relink"],
        doc_md=(
            "Finds external contacts that got a lead, account or person-account link and leads"
            " that were converted since the last successful run, and moves their LineWorks__c,"
            " TalkLog__c and LINE WORKS Tasks (spec section 7). Never creates or deletes records;"
            " a second run moves nothing. The return value says how many of each it moved."
        ),
    )


REPLAY_OBJECTS = (
    "LineWorks__c", "ExternalContact__c", "Lead", "Contact", "Account", "TalkLog__c", "Task",
)  # fmt: skip
"""The objects whose letters a replay rebuilds, in its order (`talklog.replay.REPLAY_ORDER`)."""


def build_replay_dag() -> DAG:
    """Manual: resubmit dead letters once their cause is fixed (all, one object or one code)."""
    return project_dag(
        "talklog_replay_dead_letters",
        partial(
            ReplayDeadLettersOperator,
            task_id="replay_dead_letters",
            **CONNECTION_ARGS,
            object_name="{{ params.object_name }}",
            error_code="{{ params.error_code }}",
            task_copy="{{ params.task_copy }}",
        ),
        description="Rebuild and resubmit rows Salesforce rejected, after the cause was fixed",
        cron=None,
        tags=["salesforce", "dead-letters"],
        params={
            "object_name": Param("", enum=["", *REPLAY_OBJECTS]),
            "error_code": Param("", type="string", description="only letters with this code"),
            "task_copy": Param(
                TASK_COPY,
                enum=[mode.value for mode in TaskCopy],
                description="the talk-log DAGs' Task copy (TALKLOG_TASK_COPY) for rebuilt rows",
            ),
        },
        doc_md=(
            "Trigger after fixing the cause of rejections (`talklog dead-letters --url ...` lists"
            " them). Each letter's row is rebuilt from today's store and org: TalkLog__c and"
            " LINE WORKS log Tasks re-run their window for their rooms, LineWorks__c and exchange"
            " Tasks are rebuilt as the link sync writes them (links made in Salesforce: read back"
            " first, the reps' decisions never written over), a linked parent's LineWorksUuid__c"
            " (ExternalContact__c, Lead, Contact, Account) is filled again from the links in"
            " force; a row that no longer exists is closed as obsolete with the reason. Empty"
            " params replay every open letter in this order: " + ", ".join(REPLAY_OBJECTS) + "."
        ),
        default_args={"retries": 1},
    )


def build_import_dag() -> DAG:
    """Manual: load a LINE WORKS message export (a CSV file in the import folder) into the
    message store."""
    return project_dag(
        "talklog_import_export",
        partial(
            ImportExportOperator,
            task_id="import_export",
            path="{{ params.path }}",
            timezone="{{ params.timezone }}",
            store_conn_id=STORE_CONN_ID,
        ),
        description="LINE WORKS message-content export (CSV) -> message store",
        cron=None,
        tags=["line-works", "import"],
        params={
            "path": Param(
                "",
                type="string",
                minLength=1,
                description=(
                    "export file, relative to the workers' import folder (TALKLOG_IMPORT_FOLDER,"
                    " default $AIRFLOW_HOME/imports)"
                ),
            ),
            "timezone": Param(
                TIMEZONE, type="string", description="time zone of times without an offset"
            ),
        },
        doc_md=_IMPORT_DOC,
        default_args={"retries": 1},
        writes_salesforce=False,
    )


_IMPORT_DOC = """
### LINE WORKS export → message store

Trigger with `path`: a message-content export downloaded from the LINE WORKS admin console or
the Monitoring API (`日時,送信者,受信者,チャンネルID,トーク`, UTF-8 with or without BOM), put in
the workers' import folder (`TALKLOG_IMPORT_FOLDER`, default `$AIRFLOW_HOME/imports`); `path`
is relative to it (an absolute path must lie inside it). Paths with `..`, symbolic links
leading out, hidden files (`.env`) and anything but a regular file are refused, with the rule
broken in the task's failure; no message ever quotes the file. Re-importing a file, or
overlapping exports, is harmless: messages are keyed by a content hash. The return value
(XCom) counts rows read, inserted, duplicates skipped, rejected and quarantined, and lists
rejected rows with their line numbers and reasons (a warning, not a failure; the rows are kept
in the quarantine table). A refused, missing or unrecognised file fails the task.
"""


_TALKLOG_DOC = """
### LINE WORKS talk logs → Salesforce (`{cron}`, {timezone})

Each run writes the talks of its data interval shifted back by 24 hours: the run at 01:00
writes the talks of the day before's 00:00–00:59 (hourly). The window is shown in the
*Rendered Template* of `write_talk_logs` and in its return value (XCom), with what was
written: TalkLogs and Tasks created, updated, rejected, and the API calls used.

`check_dead_letters` turns red while rows rejected by Salesforce wait in the dead-letter
table. Unpause exactly one of the three talk-log DAGs; the delivery ledger keeps every
message on every record once, even across a schedule switch.
"""
