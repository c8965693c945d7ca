"""The operator's console in the Airflow UI: a "Talk log" tab on every run, a "Talk logs" page.

Airflow's plugin loader imports this file in every component (api-server, scheduler,
dag-processor, workers), so it stays cheap: the FastAPI app (`talklog_console_app`, left out of
the loader by `.airflowignore`) is imported the first time the api-server serves a request
under `/talklog`; the listener writes each finished run's talk window and one-line result into
the run's note (the runs list shows it) and imports the domain only when a project run ends.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/talklog"
# The DAGs whose runs the tab explains, and the task that returns each one's summary.
JOB_TASKS = {
    "talklog_hourly": "write_talk_logs",
    "talklog_every_6_hours": "write_talk_logs",
    "talklog_daily": "write_talk_logs",
    "talklog_link_sync": "sync_links",
    "talklog_relink": "relink",
    "talklog_replay_dead_letters": "replay_dead_letters",
}
NOTE_LIMIT = 1000  # Airflow's dag_run_note.content


class _LazyConsoleApp:
    """An ASGI app that builds the console's FastAPI app on its first request."""

    def __init__(self) -> None:
        self._app: Any = None

    @property
    def app(self) -> Any:
        if self._app is None:
            from talklog_console_app import create_app

            self._app = create_app()
        return self._app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


console_app = _LazyConsoleApp()


class RunNotes:
    """Listener: a finished project run's note says its talk window and its result in one line
    (only when nobody wrote a note yet)."""

    @hookimpl
    def on_dag_run_success(self, dag_run: Any, msg: str) -> None:
        self._note(dag_run)

    @hookimpl
    def on_dag_run_failed(self, dag_run: Any, msg: str) -> None:
        self._note(dag_run)

    @staticmethod
    def _note(dag_run: Any) -> None:
        if dag_run.dag_id in JOB_TASKS:
            from talklog_console_app.notes import write_note

            write_note(dag_run, JOB_TASKS[dag_run.dag_id], NOTE_LIMIT)


class TalkLogConsolePlugin(AirflowPlugin):
    name = "talklog_console"
    fastapi_apps: ClassVar[list[dict[str, Any]]] = [
        {"app": console_app, "url_prefix": URL_PREFIX, "name": "Talk log console"}
    ]
    external_views: ClassVar[list[dict[str, Any]]] = [
        {
            "name": "Talk log",
            "href": "talklog/runs/{DAG_ID}/{RUN_ID}",
            "destination": "dag_run",
            "url_route": "talklog-run",
        },
        {
            "name": "Talk logs",
            "href": "talklog/",
            "destination": "nav",
            "category": "browse",
            "url_route": "talklog",
        },
    ]
    listeners: ClassVar[list[Any]] = [RunNotes()]
