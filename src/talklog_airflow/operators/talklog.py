"""Operators that run the domain's jobs with the project's hooks.

Every DAG file parse imports this module, so it imports only Airflow and cheap modules: the
jobs (pandas, the ORM, simple-salesforce, requests ...) and the Salesforce hook are imported
in `execute`, on the worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from talklog.settings import TalkLogSettings, TaskCopy
from talklog.windows import DEFAULT_TIMEZONE, talk_window
from talklog_airflow.hooks.store import MessageStoreHook

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from talklog.loading import BulkLoader
    from talklog.pipeline import RunSummary
    from talklog.relink import RelinkSummary
    from talklog.replay import ReplaySummary
    from talklog.salesforce.calls import ApiCallCounter
    from talklog.summary import JobSummary
    from talklog_airflow.hooks.salesforce import TalkLogSalesforceHook

# `TalkLogSalesforceHook.default_conn_name`, spelled out so that parsing a DAG does not
# import the hook and simple-salesforce (tests/dag_validation checks they agree).
SALESFORCE_DEFAULT_CONN_ID = "salesforce_default"


@dataclass(frozen=True)
class JobClients:
    """What a job reaches the store and Salesforce with, made once per task run."""

    store_url: str
    sessions: sessionmaker[Session]
    salesforce: TalkLogSalesforceHook
    loader: BulkLoader
    counter: ApiCallCounter

    def api_calls(self) -> int:
        """Salesforce API calls made so far in this task run."""
        return self.counter.total


class _SalesforceJobOperator(BaseOperator):
    """Shared wiring: the store and Salesforce hooks, a loader and an API call counter.

    A job returns its `talklog.summary.JobSummary`; the task returns its `as_dict()`.
    """

    template_fields: Sequence[str] = ("store_conn_id", "salesforce_conn_id", "timezone")

    def __init__(
        self,
        *,
        store_conn_id: str = MessageStoreHook.default_conn_name,
        salesforce_conn_id: str = SALESFORCE_DEFAULT_CONN_ID,
        timezone: str = DEFAULT_TIMEZONE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.store_conn_id = store_conn_id
        self.salesforce_conn_id = salesforce_conn_id
        self.timezone = timezone

    def execute(self, context: Context) -> dict[str, Any]:
        from talklog.salesforce.bulk import RequestLimitExceededError

        try:
            summary = self.run_job(context, self._clients(context))
        except RequestLimitExceededError as error:
            # Retrying cannot help until the org's 24-hour budget recovers: stop and alert.
            raise AirflowFailException(
                f"Salesforce API budget exhausted ({error.code}); nothing is lost: clear this"
                " run (or backfill its interval) once the daily budget has recovered"
            ) from error
        result = summary.as_dict()
        self.log.info("Summary: %s", result)
        if summary.rejected:
            self.log.warning(
                "Salesforce rejected %d rows; they are kept as dead letters (see the summary's"
                " rejected_by_code, and `talklog dead-letters`)",
                summary.rejected,
            )
        return result

    def run_job(self, context: Context, clients: JobClients) -> JobSummary:
        """The job itself; returns its summary (the task's return value shown in the UI)."""
        raise NotImplementedError

    def _clients(self, context: Context) -> JobClients:
        from talklog.loading import BulkLoader
        from talklog.salesforce.calls import ApiCallCounter
        from talklog_airflow.hooks.salesforce import TalkLogSalesforceHook

        store = MessageStoreHook(self.store_conn_id)
        sessions = store.get_conn()
        salesforce = TalkLogSalesforceHook(salesforce_conn_id=self.salesforce_conn_id)
        counter = ApiCallCounter(salesforce.http_session)
        loader = BulkLoader(
            salesforce.bulk_client(),
            sessions,
            dag_id=context["dag"].dag_id,
            run_id=context["run_id"],
        )
        return JobClients(store.url, sessions, salesforce, loader, counter)


class WriteTalkLogsOperator(_SalesforceJobOperator):
    """Write the transcripts of the run's talk window (its data interval shifted by 24 h).

    Returns the run's summary (window, messages, transcripts, TalkLogs and Tasks sent,
    written and rejected, API calls). Rejected rows are dead letters, never a silent success.
    """

    template_fields: Sequence[str] = (
        *_SalesforceJobOperator.template_fields,
        "task_copy",
        "window_label",
    )
    ui_color = "#e8f4fd"

    def __init__(
        self, *, task_copy: str = TaskCopy.FULL.value, window_label: str = "", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.task_copy = task_copy
        self.window_label = window_label

    def run_job(self, context: Context, clients: JobClients) -> RunSummary:
        from talklog.pipeline import write_talk_logs

        window = talk_window(context["data_interval_start"], context["data_interval_end"])
        self.log.info("Talk window %s", window.label(self.timezone))
        return write_talk_logs(
            sessions=clients.sessions,
            store_url=clients.store_url,
            query_all=clients.salesforce.conn.query_all_iter,
            loader=clients.loader,
            window=window,
            settings=TalkLogSettings(self.timezone, TaskCopy(self.task_copy)),
            run_id=context["run_id"],
            api_calls=clients.api_calls,
            describe=clients.salesforce.describe_object,
        )


class SyncLinksOperator(_SalesforceJobOperator):
    """Links into LineWorks__c and exchange Tasks: the reps' decisions in Salesforce read back
    (the default), or (with `TALKLOG_LINK_SOURCE=store`) the store's link changes pushed."""

    def run_job(self, context: Context, clients: JobClients) -> JobSummary:
        from talklog.links import sync_links
        from talklog.salesforce_links import LinkSource, link_source, sync_salesforce_links

        sync = sync_links
        if link_source() is LinkSource.SALESFORCE:  # TALKLOG_LINK_SOURCE: only one path runs
            sync = sync_salesforce_links  # type: ignore[assignment]
        return sync(
            sessions=clients.sessions,
            query_all=clients.salesforce.conn.query_all_iter,
            loader=clients.loader,
            timezone=self.timezone,
            api_calls=clients.api_calls,
            describe=clients.salesforce.describe_object,
        )


class ReplayDeadLettersOperator(_SalesforceJobOperator):
    """Rebuild the rows of open dead letters from today's store and org (after their cause
    was fixed) and load them; returns what passed now and what was obsolete.

    `timezone` and `task_copy` are the talk-log DAGs' settings (the factory passes the same
    `TALKLOG_TIMEZONE` and `TALKLOG_TASK_COPY`), so a rebuilt TalkLog or Task equals what the
    talk-log run writes.
    """

    template_fields: Sequence[str] = (
        *_SalesforceJobOperator.template_fields,
        "object_name",
        "error_code",
        "task_copy",
    )

    def __init__(
        self,
        *,
        object_name: str = "",
        error_code: str = "",
        task_copy: str = TaskCopy.FULL.value,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.object_name = object_name
        self.error_code = error_code
        self.task_copy = task_copy

    def run_job(self, context: Context, clients: JobClients) -> ReplaySummary:
        from talklog.replay import replay_dead_letters

        return replay_dead_letters(
            sessions=clients.sessions,
            store_url=clients.store_url,
            query_all=clients.salesforce.conn.query_all_iter,
            loader=clients.loader,
            settings=TalkLogSettings(self.timezone, TaskCopy(self.task_copy)),
            object_name=self.object_name or None,
            error_code=self.error_code or None,
            run_id=context["run_id"],
            api_calls=clients.api_calls,
            describe=clients.salesforce.describe_object,
        )


class RelinkOperator(_SalesforceJobOperator):
    """Move LineWorks__c, TalkLog__c and LINE WORKS Tasks to where each customer lives now."""

    def run_job(self, context: Context, clients: JobClients) -> RelinkSummary:
        from talklog.relink import relink

        return relink(
            sessions=clients.sessions,
            query_all=clients.salesforce.conn.query_all_iter,
            bulk_query=clients.loader.bulk.query,
            loader=clients.loader,
            api_calls=clients.api_calls,
            describe=clients.salesforce.describe_object,
        )
