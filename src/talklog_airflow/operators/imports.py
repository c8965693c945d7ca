"""Load a LINE WORKS message export (CSV) from the import folder into the message store.

The importer (`talklog.imports`) is imported in `execute`: DAG file parses import this module.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from talklog.windows import DEFAULT_TIMEZONE
from talklog_airflow.hooks.store import MessageStoreHook

IMPORT_FOLDER_VARIABLE = "TALKLOG_IMPORT_FOLDER"


def default_import_folder() -> str:
    """`TALKLOG_IMPORT_FOLDER`, else `$AIRFLOW_HOME/imports` (`~/airflow/imports`), as the
    worker running the task sees its environment."""
    configured = os.environ.get(IMPORT_FOLDER_VARIABLE, "").strip()
    if configured:
        return configured
    home = os.environ.get("AIRFLOW_HOME", "").strip() or "~/airflow"
    return str(Path(home).expanduser() / "imports")


class ImportExportOperator(BaseOperator):
    """Import one export file from the import folder; returns the summary (rows read,
    inserted, duplicates, rejected with their lines, quarantined).

    `path` is relative to `import_folder` (or absolute inside it); a path outside it, through
    `..` or a symbolic link leading out, a hidden file (`.env`) or anything but a regular file
    is refused, as are a missing file and a file that is not an export: the task fails without
    retries, saying which rule was broken and never what the file holds. Rejected rows only
    warn (the rest is imported).
    """

    template_fields: Sequence[str] = ("path", "timezone", "store_conn_id", "import_folder")
    ui_color = "#f0f7e8"

    def __init__(
        self,
        *,
        path: str,
        timezone: str = DEFAULT_TIMEZONE,
        store_conn_id: str = MessageStoreHook.default_conn_name,
        import_folder: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.path = path
        self.timezone = timezone
        self.store_conn_id = store_conn_id
        self.import_folder = import_folder

    def execute(self, context: Context) -> dict[str, Any]:
        from talklog.imports import ImportFileError, confine, import_export

        folder = str(self.import_folder or "").strip() or default_import_folder()
        path = str(self.path).strip()
        try:
            confine(folder, path)  # refused before the store is touched
            sessions = MessageStoreHook(self.store_conn_id).get_conn()
            summary = import_export(
                sessions,
                path,
                timezone=self.timezone,
                import_folder=folder,
                run_id=context.get("run_id"),
            )
        except ImportFileError as error:
            raise AirflowFailException(f"cannot import {path!r} from {folder}: {error}") from None
        self._log_summary(summary)
        return summary.as_dict()

    def _log_summary(self, summary: Any) -> None:
        """Counts, then rejected lines with their reasons (which never quote the file)."""
        self.log.info(
            "Imported %s: %d rows read, %d inserted, %d duplicates skipped, %d rejected"
            " (%d kept in the quarantine table)",
            summary.file,
            summary.rows_read,
            summary.inserted,
            summary.duplicates,
            summary.rejected,
            summary.quarantined,
        )
        if summary.rejected:
            self.log.warning(
                "%d rows rejected (line: reason): %s",
                summary.rejected,
                "; ".join(
                    f"{r['line']}: {r['reason']}" for r in summary.as_dict()["rejected_rows"]
                ),
            )
        for warning in summary.warnings:
            self.log.warning("%s", warning)
