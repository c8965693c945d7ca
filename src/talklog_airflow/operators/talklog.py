"""Operators that run the domain's jobs with the project's hooks.

Every DAG file parse imports this module, so it imports only Airflow and cheap modules: the
jobs (pandas, the ORM, simple-salesforce, requests ...) and the Salesforce hook are imported
in `execute`, on the worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from talklog.settings import TalkLogSettings, TaskCopy
from talklog.windows import DEFAULT_TIMEZONE, talk_window
from talklog_airflow.hooks.store import MessageStoreHook

if TYPE_CHECKING:
    from talklog.loading import BulkLoader
    from talklog.salesforce.calls import ApiCallCounter
    from talklog_airflow.hooks.salesforce import TalkLogSalesforceHook

# `TalkLogSalesforceHook.default_conn_name`, spelled out so that parsing a DAG does not
# import the hook and simple-salesforce (tests/dag_validation checks they agree).
SALESFORCE_DEFAULT_CONN_ID = "salesforce_default"


class _SalesforceJobOperator(BaseOperator):
    """Shared wiring: the store and Salesforce hooks, a loader and an API call counter."""

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
            result = self.run_job(context)
        except RequestLimitExceededError as error:
            # Retrying cannot help until the org's 24-hour budget recovers: stop and alert.
            raise AirflowFailException(
                f"Salesforce API budget exhausted ({error.code}); nothing is lost: clear this"
                " run (or backfill its interval) once the daily budget has recovered"
            ) from error
        self.log.info("Summary: %s", result)
        if result.get("rejected"):
            self.log.warning(
                "Salesforce rejected %d rows; they are kept as dead letters (see the summary's"
                " rejected_by_code, and `talklog dead-letters`)",
                result["rejected"],
            )
        return result

    def run_job(self, context: Context) -> dict[str, Any]:
        """The job itself; returns the JSON-able summary (with `rejected`) shown in the UI."""
        raise NotImplementedError

    def _clients(
        self, context: Context
    ) -> tuple[Any, TalkLogSalesforceHook, BulkLoader, ApiCallCounter]:
        from talklog.loading import BulkLoader
        from talklog.salesforce.calls import ApiCallCounter
        from talklog_airflow.hooks.salesforce import TalkLogSalesforceHook

        sessions = MessageStoreHook(self.store_conn_id).get_conn()
        salesforce = TalkLogSalesforceHook(salesforce_conn_id=self.salesforce_conn_id)
        counter = ApiCallCounter(salesforce.http_session)
        loader = BulkLoader(
            salesforce.bulk_client(),
            sessions,
            dag_id=context["dag"].dag_id,
            run_id=context["run_id"],
        )
        return sessions, salesforce, loader, counter


class WriteTalkLogsOperator(_SalesforceJobOperator):
    """Write the transcripts of the run's talk window (its data interval shifted by 24 h).

    Returns the run's summary (window, messages, transcripts, TalkLogs and Tasks sent,
    written and rejected, API calls). Rejected rows are dead letters, never a silent success.
    """

    template_fields: Sequence[str] = ("task_copy", "timezone", "window_label")
    ui_color = "#e8f4fd"

    def __init__(
        self, *, task_copy: str = TaskCopy.FULL.value, window_label: str = "", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.task_copy = task_copy
        self.window_label = window_label

    def run_job(self, context: Context) -> dict[str, Any]:
        from talklog.pipeline import write_talk_logs

        window = talk_window(context["data_interval_start"], context["data_interval_end"])
        self.log.info("Talk window %s", window.label(self.timezone))
        sessions, salesforce, loader, counter = self._clients(context)
        summary = write_talk_logs(
            sessions=sessions,
            query_all=salesforce.conn.query_all_iter,
            loader=loader,
            window=window,
            settings=TalkLogSettings(self.timezone, TaskCopy(self.task_copy)),
            run_id=context["run_id"],
            api_calls=lambda: counter.total,
        )
        return summary.as_dict()


class SyncLinksOperator(_SalesforceJobOperator):
    """Mirror link changes since the last successful sync into LineWorks__c and exchange Tasks."""

    def run_job(self, context: Context) -> dict[str, Any]:
        from talklog.links import sync_links

        sessions, salesforce, loader, counter = self._clients(context)
        summary = sync_links(
            sessions=sessions,
            query_all=salesforce.conn.query_all_iter,
            loader=loader,
            timezone=self.timezone,
        )
        return {**vars(summary), "rejected": summary.rejected, "api_calls": counter.total}


class ReplayDeadLettersOperator(_SalesforceJobOperator):
    """Resubmit open dead letters (after their cause was fixed); returns what passed now."""

    template_fields: Sequence[str] = ("object_name", "error_code")

    def __init__(self, *, object_name: str = "", error_code: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.object_name = object_name
        self.error_code = error_code

    def run_job(self, context: Context) -> dict[str, Any]:
        from talklog.replay import replay_dead_letters

        sessions, _salesforce, loader, counter = self._clients(context)
        summary = replay_dead_letters(
            sessions=sessions,
            loader=loader,
            object_name=self.object_name or None,
            error_code=self.error_code or None,
        )
        return {**summary.by_object, "rejected": summary.still_rejected, "api_calls": counter.total}


class RelinkOperator(_SalesforceJobOperator):
    """Move LineWorks__c, TalkLog__c and LINE WORKS Tasks to where each customer lives now."""

    def run_job(self, context: Context) -> dict[str, Any]:
        from talklog.relink import relink

        sessions, salesforce, loader, counter = self._clients(context)
        summary = relink(
            sessions=sessions,
            query_all=salesforce.conn.query_all_iter,
            bulk_query=loader.bulk.query,
            loader=loader,
        )
        return {**vars(summary), "rejected": summary.rejected, "api_calls": counter.total}
