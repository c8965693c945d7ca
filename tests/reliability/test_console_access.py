"""Console access (issue 19): every route of the console plugin refuses anonymous, forged and
role-less callers, and a viewer's replay or backfill; Airflow's auth manager decides.

The routes are read from the console app itself, so a route added later is checked too. Airflow
does not protect a plugin's FastAPI app by itself: without the console's own checks every case
here answers 200 (or 5xx) instead of 401/403.
"""

from __future__ import annotations

import jwt
import pytest
from fastapi.routing import APIRoute

pytestmark = pytest.mark.reliability

PATH_VALUES = {"dag_id": "talklog_hourly", "run_id": "manual__2026-01-10T02:00:00+00:00"}
QUERY = {"key": "some-message-key", "dag_id": "talklog_hourly"}
FORM = {
    "object_name": "Task",
    "error_code": "X",
    "talks_from": "2026-01-09",
    "talks_to": "2026-01-09",
}


def _routes() -> list[tuple[str, str]]:
    import airflow.settings  # puts the plugins folder on sys.path, as in every Airflow process

    assert airflow.settings.PLUGINS_FOLDER
    from talklog_console_app import create_app

    found = []
    for route in create_app().routes:
        if isinstance(route, APIRoute):
            path = route.path.format(**PATH_VALUES)
            found.extend((method, path) for method in sorted(route.methods))
    return found


ROUTES = _routes()
TRIGGERS = [(method, path) for method, path in ROUTES if method == "POST"]


def _call(api, method: str, path: str, headers: dict[str, str] | None = None, **kwargs):
    url = f"/talklog{path}"
    if method == "POST":
        return api.client.post(url, params=QUERY, data=FORM, headers=headers, **kwargs)
    return api.client.get(url, params=QUERY, headers=headers, **kwargs)


def test_the_console_has_routes_to_check():
    assert len(ROUTES) >= 8 and len(TRIGGERS) >= 2


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_anonymous_callers_are_refused(airflow_api, method, path):
    assert _call(airflow_api, method, path).status_code == 401


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_forged_tokens_are_refused(airflow_api, method, path):
    forged = jwt.encode({"sub": "intruder", "role": "admin"}, "not-the-secret", algorithm="HS512")
    for headers, cookies in (
        ({"Authorization": f"Bearer {forged}"}, None),
        (None, {"_token": forged}),
    ):
        answer = _call(airflow_api, method, path, headers, cookies=cookies)
        assert answer.status_code in (401, 403), (answer.status_code, answer.text[:200])
    airflow_api.client.cookies.clear()


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_users_without_a_role_are_refused(airflow_api, method, path):
    answer = _call(airflow_api, method, path, airflow_api.headers(None))
    assert answer.status_code == 403, answer.text[:200]


@pytest.mark.parametrize(("method", "path"), TRIGGERS)
def test_viewers_cannot_replay_or_backfill(airflow_api, method, path):
    answer = _call(airflow_api, method, path, airflow_api.headers("viewer"))
    assert answer.status_code == 403, answer.text[:200]
