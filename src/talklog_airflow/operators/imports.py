"""Load a LINE WORKS message export (CSV) into the message store.

The importer (`talklog.imports`) is imported in `execute`: DAG file parses import this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from talklog.windows import DEFAULT_TIMEZONE
from talklog_airflow.hooks.store import MessageStoreHook


class ImportExportOperator(BaseOperator):
    """Import one export file; returns the summary (rows read, inserted, duplicates, rejected).

    A missing or unreadable file fails the task without retries; rejected rows only warn (the
    rest is imported) and are listed with their line numbers in the returned summary.
    """

    template_fields: Sequence[str] = ("path", "timezone", "store_conn_id")
    ui_color = "#f0f7e8"

    def __init__(
        self,
        *,
        path: str,
        timezone: str = DEFAULT_TIMEZONE,
        store_conn_id: str = MessageStoreHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.path = path
        self.timezone = timezone
        self.store_conn_id = store_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from talklog.imports import ImportFileError, import_export

        path = Path(str(self.path).strip())
        if not str(self.path).strip() or not path.is_file():
            raise AirflowFailException(f"export file not found: {str(self.path)!r}")
        sessions = MessageStoreHook(self.store_conn_id).get_conn()
        try:
            summary = import_export(sessions, path, timezone=self.timezone)
        except ImportFileError as error:
            raise AirflowFailException(f"cannot import {path}: {error}") from error
        result = summary.as_dict()
        self.log.info(
            "Imported %s: %d rows read, %d inserted, %d duplicates skipped, %d rejected",
            path,
            summary.rows_read,
            summary.inserted,
            summary.duplicates,
            summary.rejected,
        )
        if summary.rejected:
            self.log.warning(
                "%d rows rejected (line: reason): %s",
                summary.rejected,
                "; ".join(f"{r['line']}: {r['reason']}" for r in result["rejected_rows"]),
            )
        for warning in summary.warnings:
            self.log.warning("%s", warning)
        return result
