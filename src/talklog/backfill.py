"""`talklog backfill`: a backfill named by talk days, created through Airflow's REST API.

    talklog backfill --talks-from 2026-01-09 --talks-to 2026-01-10 [--dag talklog_hourly]
                     [--tz Asia/Tokyo] [--reprocess none|failed|completed] [--dry-run]

The admin names the talk days in the configured time zone; the command prints every window of
the DAG's schedule that writes talks of those days (already ran, will run, not due yet) and
creates the backfill (`POST /api/v2/backfills`) over exactly their data intervals. Airflow's
URL and a token come from `AIRFLOW_API_URL` and `AIRFLOW_API_TOKEN` (never printed; the
simple auth manager's `/auth/token` gives one, see the README); without them, or with
`--dry-run`, it only prints. A refusal (a Viewer's token, an expired one) ends it with one line
saying what was refused and why.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from typing import Any

from talklog.console import BackfillPlan, RunRecord, Schedule, plan_backfill, runs_for_talk_days
from talklog.windows import DEFAULT_TIMEZONE, ScheduleChoice

URL_ENV = "AIRFLOW_API_URL"
TOKEN_ENV = "AIRFLOW_API_TOKEN"
TALKLOG_DAGS = {f"talklog_{choice.value}": choice for choice in ScheduleChoice}
REFUSALS = {
    401: f": {TOKEN_ENV} is expired or not a token of this Airflow; get a new one",
    403: (
        f": the user of {TOKEN_ENV} lacks the DAG permission (a backfill needs the right to"
        " trigger the DAG's runs: Airflow's User role or above, not Viewer), or the token is"
        " not one of this Airflow"
    ),
}


def add_command(commands: Any) -> None:
    """Add `backfill` to the `talklog` command's subcommands."""
    cmd = commands.add_parser("backfill", help="backfill talk days through Airflow's REST API")
    cmd.add_argument("--talks-from", required=True, type=dt.date.fromisoformat, metavar="DAY")
    cmd.add_argument("--talks-to", type=dt.date.fromisoformat, metavar="DAY")
    cmd.add_argument("--dag", default="talklog_hourly", choices=sorted(TALKLOG_DAGS))
    cmd.add_argument("--tz", default=os.environ.get("TALKLOG_TIMEZONE", DEFAULT_TIMEZONE))
    cmd.add_argument("--reprocess", default="none", choices=["none", "failed", "completed"])
    cmd.add_argument("--max-active-runs", type=int, default=1)
    cmd.add_argument("--dry-run", action="store_true", help="print the windows, create nothing")
    cmd.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    schedule = Schedule(TALKLOG_DAGS[args.dag].cron, args.tz)
    last = args.talks_to or args.talks_from
    runs = runs_for_talk_days(schedule, args.talks_from, last)
    api = AirflowApi.from_environment()
    existing = api.runs(args.dag, runs[0].start, runs[-1].start) if api else []
    now = dt.datetime.now(dt.UTC)
    plan = plan_backfill(args.dag, schedule, args.talks_from, last, existing, now)
    print("\n".join(plan.lines(args.tz)))
    if args.dry_run or api is None:
        if api is None and not args.dry_run:
            print(f"dry run: set {URL_ENV} and {TOKEN_ENV} to create the backfill")
        return
    _create(api, plan, args)


def _create(api: AirflowApi, plan: BackfillPlan, args: argparse.Namespace) -> None:
    if not plan.to_run() and args.reprocess == "none":
        print("nothing to backfill: every window already ran (use --reprocess to re-run)")
        return
    created = api.create_backfill(plan.request(args.reprocess, args.max_active_runs))
    print(f"backfill {created.get('id')} created on {plan.dag_id}")


class AirflowApi:
    """Airflow's REST API (v2) with a bearer token."""

    def __init__(self, base_url: str, token: str) -> None:
        import requests

        self.base_url = base_url.rstrip("/")
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    @classmethod
    def from_environment(cls) -> AirflowApi | None:
        url, token = os.environ.get(URL_ENV), os.environ.get(TOKEN_ENV)
        return cls(url, token) if url and token else None

    def runs(self, dag_id: str, first: dt.datetime, last: dt.datetime) -> list[RunRecord]:
        """The DAG's runs whose logical date is in [first, last]."""
        body = self._call(
            "GET",
            f"/api/v2/dags/{dag_id}/dagRuns",
            f"read the runs of {dag_id}",
            params={
                "logical_date_gte": first.isoformat(),
                "logical_date_lte": last.isoformat(),
                "limit": 1000,
            },
        )
        return [
            RunRecord(
                dag_id,
                run["dag_run_id"],
                dt.datetime.fromisoformat(run["data_interval_start"]),
                dt.datetime.fromisoformat(run["data_interval_end"]),
                run["state"],
            )
            for run in body["dag_runs"]
            if run.get("data_interval_start") and run.get("data_interval_end")
        ]

    def create_backfill(self, request: dict[str, Any]) -> dict[str, Any]:
        what = f"create a backfill of {request['dag_id']}"
        return self._call("POST", "/api/v2/backfills", what, json=request)

    def _call(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        """The answer's JSON; an error or a refusal ends the command with one line saying
        what was refused and why (never the token)."""
        import requests

        try:
            answer = self.http.request(method, self.base_url + path, timeout=30, **kwargs)
        except requests.RequestException as error:
            sys.exit(f"talklog backfill: Airflow at {self.base_url} does not answer ({error})")
        if answer.status_code >= 400:
            sys.exit(
                f"talklog backfill: Airflow refused to {what} ({answer.status_code}:"
                f" {_detail(answer)}){REFUSALS.get(answer.status_code, '')}"
            )
        return answer.json()


def _detail(answer: Any) -> str:
    try:
        return str(answer.json().get("detail", answer.reason))
    except ValueError:
        return str(answer.reason)
