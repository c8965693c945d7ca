"""`talklog backfill` (the installed command, in a subprocess) against a live Airflow: the
console's topology (`console_airflow`, shared with the browser test; runs without chromium).

The talk day is 2026-01-08, not the browser test's 2026-01-09, so neither test sees the other's
runs. Its 10:00 window already has a run (a one-interval backfill through the REST API); the
command names it "already ran" and the other 23 "will run", creates the backfill through
`POST /api/v2/backfills`, and a second call finds nothing to backfill. The backfill is
cancelled once its runs are there (the test checks the runs Airflow created, not their work)
and the day's runs are deleted at the end, so the browser test's grid never shows them.

Tokens are got as a user gets them: `make airflow` makes every caller an admin and hands a token
to anyone on 127.0.0.1 (`GET /auth/token`). It has no viewer login, so the viewer's token is
signed here with the topology's JWT secret by Airflow's own signer, as a simple auth manager
with users signs a viewer's login (`POST /auth/token`).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

TALKLOG = str(Path(sys.executable).with_name("talklog"))
DAG = "talklog_hourly"
DAY = "2026-01-08"
FIRST, LAST = "2026-01-08T15:00:00+00:00", "2026-01-09T14:00:00+00:00"  # its runs' data intervals
RAN_WINDOW = "2026-01-08 10:00 – 10:59 (Asia/Tokyo)"
DAY_RUNS = {"logical_date_gte": FIRST, "logical_date_lte": LAST}


def talklog_backfill(api_url: str, token: str, *options: str) -> subprocess.CompletedProcess:
    """`talklog backfill` of the talk day, as an admin runs it from a shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "TALKLOG_"))}
    env |= {"AIRFLOW_API_URL": api_url, "AIRFLOW_API_TOKEN": token, "NO_PROXY": "127.0.0.1"}
    command = [TALKLOG, "backfill", "--talks-from", DAY, "--talks-to", DAY, "--dag", DAG]
    command += ["--tz", "Asia/Tokyo", *options]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def admin_token(api_url: str) -> str:
    answer = requests.get(f"{api_url}/auth/token", timeout=30)
    answer.raise_for_status()
    return answer.json()["access_token"]


def viewer_token(jwt_secret: str) -> str:
    from airflow.api_fastapi.auth.managers.base_auth_manager import BaseAuthManager
    from airflow.api_fastapi.auth.tokens import JWTGenerator

    signer = JWTGenerator(
        secret_key=jwt_secret,
        valid_for=600,
        audience=BaseAuthManager._get_jwt_audience(),
        algorithm="HS512",
    )
    return signer.generate({"sub": "viewer-user", "role": "VIEWER"})


def window_lines(output: str) -> dict[str, str]:
    """Each window's label and status in the command's plan."""
    found = re.findall(r"^(.+\(Asia/Tokyo\))  run \[.+\) UTC  (.+)$", output, re.MULTILINE)
    return dict(found)


def backfills(topology: Any) -> list[dict[str, Any]]:
    return topology.api("GET", "/api/v2/backfills", dag_id=DAG)["backfills"]


def cancel_backfills(topology: Any) -> None:
    """Cancel the DAG's open backfills: their queued runs fail, a started one ends."""
    for backfill in backfills(topology):
        if backfill["completed_at"] is None:
            topology.api("PUT", f"/api/v2/backfills/{backfill['id']}/cancel")


def delete_day_runs(topology: Any, timeout: float = 60) -> None:
    """Once none of the talk day's runs is still going, delete them all."""
    deadline = time.monotonic() + timeout
    runs = topology.dag_runs(DAG, **DAY_RUNS)
    while any(r["state"] in ("queued", "running") for r in runs) and time.monotonic() < deadline:
        time.sleep(0.5)
        runs = topology.dag_runs(DAG, **DAY_RUNS)
    for run in runs:
        topology.api("DELETE", f"/api/v2/dags/{DAG}/dagRuns/{run['dag_run_id']}")


def one_window_ran(topology: Any) -> None:
    """The run of the day's 10:00 window, through a one-interval backfill (then cancelled)."""
    at = "2026-01-09T10:00:00+09:00"  # its data interval starts a day after its talks
    body = {"dag_id": DAG, "from_date": at, "to_date": at, "max_active_runs": 1}
    backfill = topology.api("POST", "/api/v2/backfills", body)
    topology.api("PUT", f"/api/v2/backfills/{backfill['id']}/cancel")


def test_talklog_backfill_against_a_live_airflow(console_airflow):
    topology = console_airflow.topology
    api_url = topology.config.api_url
    topology.wait_dag(DAG)
    one_window_ran(topology)
    jwt_secret = topology.env["AIRFLOW__API_AUTH__JWT_SECRET"]
    admin, viewer = admin_token(api_url), viewer_token(jwt_secret)
    outputs = []
    try:
        dry = talklog_backfill(api_url, admin, "--dry-run")
        outputs.append(dry)
        assert dry.returncode == 0, dry.stderr
        statuses = window_lines(dry.stdout)
        assert len(statuses) == 24 and statuses.pop(RAN_WINDOW) == "already ran"
        assert set(statuses.values()) == {"will run"}
        assert f"{DAG}: 23 of 24 windows to run; backfill from {FIRST} to {LAST}" in dry.stdout
        before = len(backfills(topology))

        refused = talklog_backfill(api_url, viewer)
        outputs.append(refused)
        assert refused.returncode == 1
        assert refused.stderr.startswith(
            f"talklog backfill: Airflow refused to create a backfill of {DAG} (403: Forbidden)"
        )
        assert "not Viewer" in refused.stderr
        assert len(backfills(topology)) == before

        created = talklog_backfill(api_url, admin)
        outputs.append(created)
        assert created.returncode == 0, created.stderr
        newest = max(backfills(topology), key=lambda b: b["id"])
        assert f"backfill {newest['id']} created on {DAG}" in created.stdout
        assert (newest["from_date"], newest["to_date"]) == (_utc(FIRST), _utc(LAST))
        assert newest["reprocess_behavior"] == "none" and newest["max_active_runs"] == 1
        runs = topology.dag_runs(DAG, **DAY_RUNS)
        assert len(runs) == 24 and {r["run_type"] for r in runs} == {"backfill"}
        starts = {r["data_interval_start"] for r in runs}
        assert len(starts) == 24 and min(starts) == _utc(FIRST) and max(starts) == _utc(LAST)
        cancel_backfills(topology)

        again = talklog_backfill(api_url, admin)
        outputs.append(again)
        assert again.returncode == 0, again.stderr
        assert "nothing to backfill: every window already ran" in again.stdout
        assert set(window_lines(again.stdout).values()) == {"already ran"}
        assert len(backfills(topology)) == before + 1
    finally:
        cancel_backfills(topology)
        delete_day_runs(topology)
    secrets = (admin, viewer, jwt_secret)
    for result in outputs:
        text = result.stdout + result.stderr
        assert not any(secret in text for secret in secrets) and "Bearer" not in text


def test_a_token_of_another_airflow_is_refused(console_airflow):
    topology = console_airflow.topology
    forged = viewer_token("a-secret-of-another-airflow-" * 3)
    result = talklog_backfill(topology.config.api_url, forged)
    assert result.returncode == 1 and forged not in result.stdout + result.stderr
    assert result.stderr.startswith(
        f"talklog backfill: Airflow refused to read the runs of {DAG} (403: Invalid JWT token)"
    )


def _utc(iso: str) -> str:
    """Airflow's spelling of a UTC time: `Z`, not `+00:00`."""
    return iso.replace("+00:00", "Z")
