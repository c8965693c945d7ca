"""The console's FastAPI app, mounted by the `talklog_console` plugin under `/talklog`.

Every route requires a signed-in Airflow user (Airflow's own `get_user`: the UI's `_token`
cookie or an `Authorization: Bearer` JWT) and the DAG permission matching what it shows or
starts, checked by Airflow's auth manager (`requires_access_dag`): read (GET) on a run's DAG
for its tab, on the chosen talk-log DAG for the windows table, on the replay DAG for dead
letters and traces; trigger (POST on its runs) on the replay DAG for Replay and on the
talk-log DAG for a backfill. Replays and backfills are created through Airflow's REST API with
the user's own token, so Airflow checks and records them as that user. Forms that rely on the
cookie carry a token signed with `[api] secret_key` (no cross-site posts).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import httpx
from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from airflow.configuration import conf
from fastapi import Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from itsdangerous import BadSignature, URLSafeTimedSerializer

from talklog import console
from talklog.windows import talk_window, zone

from . import data

TEMPLATES = Jinja2Templates(directory=Path(__file__).with_name("templates"))
READ = "GET"
TRIGGER = "POST"
CSRF_MAX_AGE_S = 8 * 3600
DEFAULT_DAG = os.environ.get("TALKLOG_CONSOLE_DAG", "talklog_hourly")  # the page's first DAG


def create_app() -> FastAPI:
    app = FastAPI(title="LINE WORKS talk log console", docs_url=None, redoc_url=None)
    app.state.airflow_transport = None  # tests: an ASGI transport to Airflow's own app
    app.state.airflow_base_url = None
    _routes(app)
    return app


def _routes(app: FastAPI) -> None:
    app.get("/runs/{dag_id}/{run_id}", response_class=HTMLResponse, dependencies=[_read_run()])(
        run_tab
    )
    app.get("/api/runs/{dag_id}/{run_id}", dependencies=[_read_run()])(run_json)
    app.get("/", response_class=HTMLResponse, dependencies=[_read_run()])(page)
    app.get("/api/windows", dependencies=[_read_run()])(windows_json)
    app.get("/api/dead-letters", dependencies=[_read_replay()])(dead_letters_json)
    app.get("/api/trace", dependencies=[_read_replay()])(trace_json)
    app.get("/api/backfill", dependencies=[_read_run()])(backfill_plan_json)
    app.post("/replay", dependencies=[_trigger_replay()])(replay)
    app.post("/backfill", dependencies=[_trigger_run()])(backfill)


def _access(method: str, dag_id: str | None = None) -> Any:
    """Airflow's check of `method` on the runs of `dag_id`, or of the DAG named in the path or
    the `dag_id` query parameter (the page's default DAG when none is named)."""

    def check(request: Request, user: GetUserDep) -> None:
        named = request.path_params.get("dag_id") or request.query_params.get("dag_id")
        target = dag_id or named or DEFAULT_DAG
        requires_access_dag(method, DagAccessEntity.RUN, param_dag_id=target)(request, user)

    return Depends(check)


def _read_run() -> Any:
    return _access(READ)


def _read_replay() -> Any:
    return _access(READ, data.REPLAY_DAG)


def _trigger_replay() -> Any:
    return _access(TRIGGER, data.REPLAY_DAG)


def _trigger_run() -> Any:
    return _access(TRIGGER)


DagId = Annotated[str, Query(description="a talk-log DAG")]
Day = Annotated[dt.date | None, Query(description="a talk day in the configured time zone")]


# -- a run's tab ---------------------------------------------------------------------------------


def run_view(session: SessionDep, dag_id: str, run_id: str) -> dict[str, Any]:
    """What the tab shows: the talk window, the summary as rows, budget, duration, advice."""
    run = data.find_run(session, dag_id, run_id)
    if run is None:
        raise HTTPException(404, f"no run {run_id!r} of {dag_id!r}")
    from talklog_console import JOB_TASKS

    task_id = JOB_TASKS.get(dag_id)
    summary = data.returned(session, dag_id, [run_id], task_id).get(run_id) if task_id else None
    summary = summary if isinstance(summary, dict) else None
    budget = data.returned(session, dag_id, [run_id], data.BUDGET_TASK).get(run_id)
    view: dict[str, Any] = {
        "dag_id": dag_id,
        "run_id": run_id,
        "state": str(run.state),
        "project_dag": task_id is not None,
        "window": _window_view(run) if dag_id in data.TALKLOG_SCHEDULES else None,
        "one_line": console.one_line(summary) if task_id else None,
        "summary": summary,
        "rows": console.summary_rows(summary) if summary else [],
        "budget": budget if isinstance(budget, dict) else None,
        "duration_s": _duration(run),
        "advice": console.advice(summary) if summary else [],
        "note": run.note,
    }
    if str(run.state) == "failed" and not view["advice"]:
        view["advice"] = [
            "The run failed: open its task logs; clear the run once the cause is fixed."
        ]
    return view


def _window_view(run: Any) -> dict[str, Any]:
    window = talk_window(run.data_interval_start, run.data_interval_end)
    start = window.start.astimezone(zone(data.TIMEZONE))
    offset = start.strftime("%z")
    return {
        "label": window.label(data.TIMEZONE),
        "utc_offset": f"UTC{offset[:3]}:{offset[3:]}",
        "start": window.start.isoformat(),
        "end": window.end.isoformat(),
        "coverage": _coverage(window.end),
    }


def _coverage(window_end: dt.datetime) -> dict[str, Any]:
    """Whether the store held messages up to the window's end (ingestion caught up)."""
    try:
        latest = data.latest_message_at()
    except Exception as error:  # shown, not raised: the rest of the tab still helps
        return {"ok": False, "text": f"message store not reachable ({type(error).__name__})"}
    if latest is None:
        return {"ok": False, "text": "the message store holds no messages"}
    local = latest.astimezone(zone(data.TIMEZONE))
    ok = latest >= window_end - dt.timedelta(hours=1)
    text = f"newest message in the store: {local:%Y-%m-%d %H:%M} ({data.TIMEZONE})"
    return {"ok": ok, "text": text + ("" if ok else " — ingestion may not cover this window")}


def _duration(run: Any) -> float | None:
    if run.start_date and run.end_date:
        return round((run.end_date - run.start_date).total_seconds(), 1)
    return None


def run_tab(request: Request, view: Annotated[dict, Depends(run_view)]) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, "run.html", {"v": view, "root": _root(request)})


def run_json(view: Annotated[dict, Depends(run_view)]) -> dict[str, Any]:
    return view


# -- the talk logs page --------------------------------------------------------------------------


def _talk_days(talks_from: dt.date | None, talks_to: dt.date | None) -> tuple[dt.date, dt.date]:
    """The chosen talk days, by default the last day whose windows have all run."""
    default = (dt.datetime.now(zone(data.TIMEZONE)) - dt.timedelta(days=2)).date()
    first = talks_from or talks_to or default
    last = talks_to or first
    if last < first:
        raise HTTPException(422, "the last talk day is before the first")
    if (last - first).days > 31:
        raise HTTPException(422, "choose at most 31 talk days at a time")
    return first, last


def _talklog_dag(dag_id: str) -> str:
    if dag_id not in data.TALKLOG_SCHEDULES:
        raise HTTPException(404, f"{dag_id!r} is not a talk-log DAG")
    return dag_id


def window_rows(
    session: SessionDep,
    user: GetUserDep,
    dag_id: DagId = DEFAULT_DAG,
    talks_from: Day = None,
    talks_to: Day = None,
) -> dict[str, Any]:
    """The talk windows of the chosen days and DAG, each with the runs that wrote it."""
    schedule = data.schedule_of(_talklog_dag(dag_id))
    first, last = _talk_days(talks_from, talks_to)
    start, end = console.day_span(first, last, data.TIMEZONE)
    readable = [d for d in data.TALKLOG_SCHEDULES if _may(user, READ, d)]
    runs = data.talklog_runs(session, readable, start, end)
    rows = console.window_table(schedule, start, end, runs, dt.datetime.now(dt.UTC))
    return {
        "dag_id": dag_id,
        "timezone": data.TIMEZONE,
        "talks_from": first.isoformat(),
        "talks_to": last.isoformat(),
        "windows": [_row_view(row) for row in rows],
        "gaps": sum(row.state == console.WindowState.GAP for row in rows),
    }


def _row_view(row: console.WindowRow) -> dict[str, Any]:
    return {
        "label": row.window.label(data.TIMEZONE),
        "start": row.window.start.isoformat(),
        "state": row.state.value,
        "counts": row.counts,
        "runs": [
            {
                "dag_id": r.dag_id,
                "run_id": r.run_id,
                "state": r.state,
                "result": console.one_line(r.summary),
            }
            for r in row.runs
        ],
    }


def windows_json(view: Annotated[dict, Depends(window_rows)]) -> dict[str, Any]:
    return view


def dead_letters_json() -> dict[str, Any]:
    groups = data.dead_letter_groups()
    return {"open": sum(g.count for g in groups), "groups": [_group_view(g) for g in groups]}


def _group_view(group: data.LetterGroup) -> dict[str, Any]:
    return {
        "object_name": group.object_name,
        "error_code": group.error_code,
        "count": group.count,
        "retryable": group.retryable,
        "oldest": group.oldest.astimezone(zone(data.TIMEZONE)).strftime("%Y-%m-%d %H:%M"),
    }


def trace_json(key: Annotated[str, Query(min_length=1, max_length=300)]) -> dict[str, Any]:
    return {"key": key, "lines": data.trace(key)}


def backfill_plan(
    session: SessionDep,
    dag_id: DagId = DEFAULT_DAG,
    talks_from: Day = None,
    talks_to: Day = None,
) -> console.BackfillPlan:
    schedule = data.schedule_of(_talklog_dag(dag_id))
    first, last = _talk_days(talks_from, talks_to)
    runs = console.runs_for_talk_days(schedule, first, last)
    existing = data.existing_runs(session, dag_id, runs)
    now = dt.datetime.now(dt.UTC)
    return console.plan_backfill(dag_id, schedule, first, last, existing, now)


def _plan_view(plan: console.BackfillPlan) -> dict[str, Any]:
    return {
        "dag_id": plan.dag_id,
        "windows": [
            {"label": run.window.label(data.TIMEZONE), "status": plan.status(run)}
            for run in plan.runs
        ],
        "to_run": len(plan.to_run()),
        "request": plan.request() if plan.runs else None,
    }


def backfill_plan_json(
    plan: Annotated[console.BackfillPlan, Depends(backfill_plan)],
) -> dict[str, Any]:
    return _plan_view(plan)


def page(
    request: Request,
    user: GetUserDep,
    windows: Annotated[dict, Depends(window_rows)],
    plan: Annotated[console.BackfillPlan, Depends(backfill_plan)],
    key: Annotated[str | None, Query(max_length=300)] = None,
    done: Annotated[str | None, Query(max_length=300)] = None,
) -> HTMLResponse:
    """The Talk logs page: windows and gaps, dead letters with Replay, trace, backfill."""
    may_read_store = _may(user, READ, data.REPLAY_DAG)
    context = {
        "root": _root(request),
        "w": windows,
        "dags": list(data.TALKLOG_SCHEDULES),
        "letters": _safe(dead_letters_json) if may_read_store else None,
        "trace": (_safe(lambda: trace_json(key)) if key and may_read_store else None),
        "key": key or "",
        "plan": _plan_view(plan),
        "may_replay": _may(user, TRIGGER, data.REPLAY_DAG),
        "may_backfill": _may(user, TRIGGER, windows["dag_id"]),
        "csrf": _csrf_token(user),
        "done": done,
    }
    return TEMPLATES.TemplateResponse(request, "page.html", context)


def _safe(read: Any) -> dict[str, Any]:
    try:
        return read()
    except Exception as error:  # the page still shows the runs when the store is down
        return {"error": f"message store not reachable ({type(error).__name__})"}


# -- actions through Airflow's REST API ----------------------------------------------------------


async def replay(
    request: Request,
    user: GetUserDep,
    object_name: Annotated[str, Form()] = "",
    error_code: Annotated[str, Form(max_length=100)] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Trigger the replay DAG for one object and error code, as the signed-in user."""
    _check_csrf(request, user, csrf)
    body = {"logical_date": None, "conf": {"object_name": object_name, "error_code": error_code}}
    answer = await _airflow(request, "POST", f"/api/v2/dags/{data.REPLAY_DAG}/dagRuns", body)
    run_id = answer.get("dag_run_id", "")
    return _done(request, {"dag_run_id": run_id}, f"replay triggered: {run_id}")


async def backfill(
    request: Request,
    user: GetUserDep,
    session: SessionDep,
    dag_id: DagId,
    talks_from: Annotated[dt.date, Form()],
    talks_to: Annotated[dt.date, Form()],
    reprocess: Annotated[str, Form(pattern="^(none|failed|completed)$")] = "none",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Create the backfill of talk days [talks_from, talks_to] through Airflow's API."""
    _check_csrf(request, user, csrf)
    plan = backfill_plan(session, dag_id, talks_from, talks_to)
    if not plan.runs:
        raise HTTPException(422, "no window of the schedule writes these talk days")
    answer = await _airflow(request, "POST", "/api/v2/backfills", plan.request(reprocess))
    text = f"backfill {answer.get('id')} created: {len(plan.to_run())} windows"
    return _done(request, {"backfill_id": answer.get("id"), **plan.request(reprocess)}, text)


async def _airflow(request: Request, method: str, path: str, body: Any) -> dict[str, Any]:
    """Call Airflow's REST API with the caller's own token; its refusal is passed on."""
    token = _credential(request)
    state = request.app.state
    base = state.airflow_base_url or conf.get("api", "base_url", fallback="") or _origin(request)
    async with httpx.AsyncClient(
        transport=state.airflow_transport, base_url=base.rstrip("/"), timeout=30, trust_env=False
    ) as client:
        answer = await client.request(
            method, path, json=body, headers={"Authorization": f"Bearer {token}"}
        )
    if answer.status_code >= 400:
        raise HTTPException(answer.status_code, _detail(answer))
    return answer.json()


def _detail(answer: httpx.Response) -> Any:
    try:
        return answer.json().get("detail", answer.reason_phrase)
    except ValueError:
        return answer.reason_phrase


def _credential(request: Request) -> str:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:]
    return request.cookies.get(COOKIE_NAME_JWT_TOKEN, "")


def _origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def _done(request: Request, body: dict[str, Any], text: str) -> Response:
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse(body)
    target = (request.headers.get("referer") or f"{_root(request)}/").split("done=")[0]
    separator = "" if target.endswith(("?", "&")) else ("&" if "?" in target else "?")
    return RedirectResponse(f"{target}{separator}{urlencode({'done': text})}", status_code=303)


# -- helpers -------------------------------------------------------------------------------------


def _may(user: Any, method: str, dag_id: str) -> bool:
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager().is_authorized_dag(
        method=method, access_entity=DagAccessEntity.RUN, details=DagDetails(id=dag_id), user=user
    )


def _root(request: Request) -> str:
    """This app's path as the browser sees it (Airflow's root path and the mount prefix)."""
    return request.scope.get("root_path", "").rstrip("/")


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(conf.get("api", "secret_key"), salt="talklog-console")


def _csrf_token(user: Any) -> str:
    return _serializer().dumps(str(user.get_id()))


def _check_csrf(request: Request, user: Any, token: str) -> None:
    """A cookie-authenticated form must carry the page's signed token (no cross-site posts)."""
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        return  # a bearer token is never sent by a browser on its own
    try:
        signed_for = _serializer().loads(token, max_age=CSRF_MAX_AGE_S)
    except BadSignature:
        raise HTTPException(403, "the form has expired: reload the page") from None
    if signed_for != str(user.get_id()):
        raise HTTPException(403, "the form was made for another user: reload the page")
