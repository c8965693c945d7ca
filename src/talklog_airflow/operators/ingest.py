"""LINE WORKS into the message store: the directory sync, talk ingestion and the coverage wait.

Every DAG file parse imports this module: the domain (`talklog.ingest`, the client, the ORM)
is imported in `execute`/`poke`, on the worker.

Downloads must not run concurrently (LINE WORKS may refuse a download while another runs):
every ingestion task runs in the Airflow pool `LINEWORKS_POOL` (one slot), which the project
creates (`make airflow`, compose's airflow-init, the demo) and a deployment creates with
``airflow pools set lineworks_download 1 "LINE WORKS downloads, one at a time"``.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator, BaseSensorOperator, Context
from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout

from talklog.windows import DEFAULT_TIMEZONE, talk_window, zone
from talklog_airflow.hooks.store import MessageStoreHook

LINEWORKS_CONN_ID = os.environ.get("TALKLOG_LINEWORKS_CONN_ID", "lineworks_default")
LINEWORKS_POOL = os.environ.get("TALKLOG_LINEWORKS_POOL", "lineworks_download")
HISTORY_SLICE = dt.timedelta(days=31)
POOL_NOTE = f"""
Runs in the pool `{LINEWORKS_POOL}` (one slot: one LINE WORKS download at a time). **If this
task stays "scheduled"**, the pool is missing: Airflow 3 never schedules a task of a pool that
does not exist (the scheduler only logs "Tasks using non-existent pool ... will not be
scheduled"). Create it: `airflow pools set {LINEWORKS_POOL} 1 "LINE WORKS downloads, one at a
time"` (`make airflow` and compose's airflow-init do).
"""


class _LineWorksOperator(BaseOperator):
    template_fields: Sequence[str] = ("store_conn_id", "lineworks_conn_id", "timezone")
    ui_color = "#e8fde8"

    def __init__(
        self,
        *,
        store_conn_id: str = MessageStoreHook.default_conn_name,
        lineworks_conn_id: str = LINEWORKS_CONN_ID,
        timezone: str = DEFAULT_TIMEZONE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.store_conn_id = store_conn_id
        self.lineworks_conn_id = lineworks_conn_id
        self.timezone = timezone

    def _hook(self) -> Any:
        from talklog_airflow.hooks.lineworks import LineWorksHook

        return LineWorksHook(self.lineworks_conn_id)

    def _failed(self, error: Exception, what: str) -> AirflowFailException | Exception:
        """A LINE WORKS error that waiting cannot fix fails without retry; others retry."""
        from talklog.lineworks import LineWorksError
        from talklog.salesforce.failures import Failure

        if isinstance(error, LineWorksError) and error.failure is not Failure.RETRY_NOW:
            return AirflowFailException(f"{what} failed: {error}")
        return error


class SyncDirectoryOperator(_LineWorksOperator):
    """Staff (`/users`) and LINE contacts (`/contacts`, since the last sync) into the store."""

    def execute(self, context: Context) -> dict[str, Any]:
        from talklog.directory_sync import sync_directory
        from talklog.lineworks import LineWorksError

        hook = self._hook()
        try:
            summary = sync_directory(
                MessageStoreHook(self.store_conn_id).get_conn(),
                hook.get_conn(),
                domain_id=hook.domain_id,
            )
        except LineWorksError as error:
            raise self._failed(error, "the LINE WORKS directory sync") from None
        return summary.as_dict()


class IngestTalksOperator(_LineWorksOperator):
    """Download the talks of the run's talk window (or of `start`..`end`, local dates of the
    history DAG, in 31-day slices) and import them; records what it covered."""

    template_fields: Sequence[str] = (*_LineWorksOperator.template_fields, "start", "end")

    def __init__(self, *, start: str = "", end: str = "", **kwargs: Any) -> None:
        kwargs.setdefault("pool", LINEWORKS_POOL)
        kwargs.setdefault("doc_md", POOL_NOTE)
        super().__init__(**kwargs)
        self.start = start
        self.end = end

    def period(self, context: Context) -> tuple[dt.datetime, dt.datetime]:
        if not (str(self.start).strip() or str(self.end).strip()):
            window = talk_window(context["data_interval_start"], context["data_interval_end"])
            return window.start, window.end
        try:
            first = dt.date.fromisoformat(str(self.start).strip())
            last = dt.date.fromisoformat(str(self.end).strip())
        except ValueError:
            raise AirflowFailException("from and to must be dates like 2026-01-31") from None
        local = zone(self.timezone)
        start = dt.datetime.combine(first, dt.time(), local)
        end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), local)
        if end <= start:
            raise AirflowFailException(f"the period {first} .. {last} ends before it starts")
        return start, end

    def execute(self, context: Context) -> dict[str, Any]:
        from talklog.imports import ImportFileError, ImportStoreError
        from talklog.ingest import ingest_talks
        from talklog.lineworks import LineWorksError, TalkDownloadError

        start, end = self.period(context)
        hook = self._hook()
        try:
            summary = ingest_talks(
                MessageStoreHook(self.store_conn_id).get_conn(),
                hook.get_conn(),
                start,
                end,
                timezone=self.timezone,
                domain_id=hook.domain_id,
                run_id=context.get("run_id"),
            )
        except TalkDownloadError as error:
            raise AirflowFailException(
                f"the talk download of {start.isoformat()} .. {end.isoformat()} failed and"
                f" nothing of it was imported: {error}"
            ) from None
        except LineWorksError as error:
            raise self._failed(error, "the LINE WORKS talk download") from None
        except (ImportFileError, ImportStoreError) as error:
            raise AirflowFailException(f"importing the downloaded talks failed: {error}") from None
        result = summary.as_dict()
        self.log.info("Ingestion: %s", result)
        return result


class TalkWindowCoveredSensor(BaseSensorOperator):
    """Wait (rescheduled: no worker slot held) until the run's talk window is ingested;
    fail with "talks of <window> are not ingested yet" after `timeout`."""

    template_fields: Sequence[str] = ("store_conn_id", "window_label")
    ui_color = "#fdf6e8"

    def __init__(
        self,
        *,
        store_conn_id: str = MessageStoreHook.default_conn_name,
        window_label: str = "",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", 300)
        kwargs.setdefault("timeout", 6 * 3600)
        super().__init__(**kwargs)
        self.store_conn_id = store_conn_id
        self.window_label = window_label

    def poke(self, context: Context) -> bool:
        from talklog import coverage

        window = talk_window(context["data_interval_start"], context["data_interval_end"])
        with MessageStoreHook(self.store_conn_id).get_conn()() as session:
            missing = coverage.gaps(session, window.start, window.end)
        if missing:
            shown = ", ".join(f"{a.isoformat()} .. {b.isoformat()}" for a, b in missing[:5])
            self.log.info("Not covered yet (UTC): %s", shown)
        return not missing

    def execute(self, context: Context) -> Any:
        try:
            return super().execute(context)
        except AirflowSensorTimeout:
            label = self.window_label or "this window"
            raise AirflowFailException(
                f"talks of {label} are not ingested yet: no download or import recorded them"
                " completely (see the ingest task, or run talklog import --covers); clear this"
                " run once they are"
            ) from None
