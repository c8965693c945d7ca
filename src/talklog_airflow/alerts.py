"""Telling someone: failed tasks and a low Salesforce API budget, through Airflow's notifier.

`TalkLogAlertNotifier` (an `airflow.sdk.BaseNotifier`) is every DAG's `on_failure_callback`.
Where it sends, first configured wins:

* **webhook**: the Airflow connection ``talklog_alerts`` (id from ``TALKLOG_ALERTS_CONN_ID``),
  an HTTP POST of a small JSON document. ``host`` is the full URL
  (``{"conn_type": "http", "host": "https://hooks.example.com/T0/B0/xyz"}``), or a host name
  with ``port``, ``schema`` (the path) and extra ``scheme`` (default https); extra ``headers``
  (a dict) are sent as they are, so tokens stay in the connection.
* **e-mail**: ``TALKLOG_ALERT_EMAIL`` (comma-separated addresses), sent with Airflow's own
  ``[email]``/``[smtp]`` settings (``AIRFLOW__SMTP__SMTP_HOST`` ...).
* otherwise nothing is sent and the task log says so.

The document carries the DAG, run, task, talk window, alert kind and error class (or the
budget numbers), never message content, connection fields or error messages.
`check_api_budget` runs after each talk-log run: it reads ``/limits`` (``DailyApiRequests``)
through the Salesforce hook and alerts when the remaining share is below
``TALKLOG_API_BUDGET_ALERT_PERCENT`` (default 10).

Every DAG file parse imports this module: requests and simple-salesforce are imported when an
alert is sent or the budget is read, not here.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from airflow.sdk import BaseHook, BaseNotifier, task
from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException

from talklog.windows import DEFAULT_TIMEZONE, ScheduleChoice, talk_window

log = logging.getLogger(__name__)

ALERTS_CONN_ID = os.environ.get("TALKLOG_ALERTS_CONN_ID", "talklog_alerts")
BUDGET_PERCENT_ENV = "TALKLOG_API_BUDGET_ALERT_PERCENT"
EMAIL_ENV = "TALKLOG_ALERT_EMAIL"
TALKLOG_DAG_IDS = frozenset(f"talklog_{choice.value}" for choice in ScheduleChoice)
TIMEOUT_S = 10


def run_facts(context: Any) -> dict[str, Any]:
    """DAG, run, task and window of a task context: ids and times only."""
    dag_run, ti = context.get("dag_run"), context.get("ti")
    dag_id = getattr(dag_run, "dag_id", None) or getattr(context.get("dag"), "dag_id", None)
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    facts: dict[str, Any] = {
        "dag_id": dag_id,
        "run_id": context.get("run_id") or getattr(dag_run, "run_id", None),
        "task_id": getattr(ti, "task_id", None),
        "try_number": getattr(ti, "try_number", None),
        "data_interval": [_iso(start), _iso(end)],
    }
    if dag_id in TALKLOG_DAG_IDS and start is not None and end is not None:
        window = talk_window(start, end)
        facts["talk_window"] = [_iso(window.start), _iso(window.end)]
        facts["talk_window_label"] = window.label(
            os.environ.get("TALKLOG_TIMEZONE", DEFAULT_TIMEZONE)
        )
    return facts


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def webhook_url(conn: Any) -> str:
    """The POST URL of the alerts connection (see the module doc)."""
    host = (conn.host or "").strip()
    if "://" in host:
        return host.rstrip("/") + (f"/{conn.schema.lstrip('/')}" if conn.schema else "")
    scheme = conn.extra_dejson.get("scheme", "https")
    port = f":{conn.port}" if conn.port else ""
    path = f"/{conn.schema.lstrip('/')}" if conn.schema else ""
    return f"{scheme}://{host}{port}{path}"


def alerts_connection(conn_id: str = ALERTS_CONN_ID) -> Any | None:
    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def send_alert(document: dict[str, Any], conn_id: str = ALERTS_CONN_ID) -> str:
    """Send to the webhook, else by e-mail, else log; returns where it went."""
    conn = alerts_connection(conn_id)
    if conn is not None and conn.host:
        import requests

        url = webhook_url(conn)
        headers = {"Content-Type": "application/json", **conn.extra_dejson.get("headers", {})}
        response = requests.post(url, data=json.dumps(document), headers=headers, timeout=TIMEOUT_S)
        response.raise_for_status()
        log.info("Alert %s sent to the %s webhook", document.get("alert"), conn_id)
        return "webhook"
    addresses = [a.strip() for a in os.environ.get(EMAIL_ENV, "").split(",") if a.strip()]
    if addresses:
        from airflow.utils.email import send_email

        subject = f"[talklog] {document.get('alert')}: {document.get('dag_id')}"
        body = f"<pre>{json.dumps(document, indent=2, ensure_ascii=False)}</pre>"
        send_email(addresses, subject, body)
        log.info("Alert %s e-mailed to %d addresses", document.get("alert"), len(addresses))
        return "email"
    log.warning(
        "Alert %s not sent: no %r connection and no %s set: %s",
        document.get("alert"),
        conn_id,
        EMAIL_ENV,
        document,
    )
    return "log"


class TalkLogAlertNotifier(BaseNotifier):
    """`on_failure_callback` of every project DAG: who failed, where, with which error class."""

    def __init__(self, conn_id: str = ALERTS_CONN_ID) -> None:
        super().__init__()
        self.conn_id = conn_id

    def notify(self, context: Any) -> None:
        error = context.get("exception")
        document = {
            "alert": "task_failed",
            **run_facts(context),
            "error_class": type(error).__name__ if error is not None else None,
        }
        send_alert(document, self.conn_id)


def budget_threshold_percent() -> float:
    return float(os.environ.get(BUDGET_PERCENT_ENV, "10"))


def budget_document(limits: dict[str, Any], threshold: float) -> dict[str, Any]:
    """`DailyApiRequests` of a `/limits` answer, with the remaining share in percent."""
    daily = limits["DailyApiRequests"]
    maximum, remaining = int(daily["Max"]), int(daily["Remaining"])
    percent = 100.0 * remaining / maximum if maximum else 0.0
    return {
        "alert": "api_budget_low",
        "daily_api_requests_max": maximum,
        "daily_api_requests_remaining": remaining,
        "remaining_percent": round(percent, 2),
        "threshold_percent": threshold,
    }


@task(task_id="check_api_budget", trigger_rule="all_done", multiple_outputs=False)
def check_api_budget(salesforce_conn_id: str, **context: Any) -> dict[str, Any]:
    """Read `/limits` after the run; alert when the daily API budget runs low."""
    from simple_salesforce.exceptions import SalesforceRefusedRequest

    from talklog_airflow.hooks.salesforce import TalkLogSalesforceHook

    hook = TalkLogSalesforceHook(salesforce_conn_id=salesforce_conn_id)
    try:
        limits = hook.conn.limits()
    except SalesforceRefusedRequest as error:
        if "REQUEST_LIMIT_EXCEEDED" not in str(error.content):
            raise
        spent = {"DailyApiRequests": {"Max": 0, "Remaining": 0}}
        send_alert({**budget_document(spent, budget_threshold_percent()), **run_facts(context)})
        # Retrying cannot help until the 24-hour budget recovers: stop at once.
        raise AirflowFailException("Salesforce daily API budget exhausted") from error
    budget = budget_document(limits, budget_threshold_percent())
    budget["low"] = budget["remaining_percent"] < budget["threshold_percent"]
    if budget["low"]:
        sent_to = send_alert({**budget, **run_facts(context)})
        budget["alert_sent_to"] = sent_to
    return budget
