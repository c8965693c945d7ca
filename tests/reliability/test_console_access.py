"""Console access (issue 19): every route of the console plugin refuses anonymous, forged and
role-less callers, a viewer's replay or backfill, and a caller without the one DAG permission
the route needs (read for the views, trigger for Replay and backfill); Airflow's auth manager
decides.

The routes are read from the console app itself, so a route added later is checked too, and
must be named in NEEDS. Airflow does not protect a plugin's FastAPI app by itself: without the
console's own checks every case here answers 200 (or 5xx) instead of 401/403.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import jwt
import pytest
from fastapi.routing import APIRoute

from talklog.store.migrate import upgrade

pytestmark = pytest.mark.reliability

DAG = "talklog_hourly"
REPLAY_DAG = "talklog_replay_dead_letters"
PATH_VALUES = {"dag_id": DAG, "run_id": "manual__2026-01-10T02:00:00+00:00"}
QUERY = {"key": "some-message-key", "dag_id": DAG}
FORM = {
    "object_name": "Task",
    "error_code": "X",
    "talks_from": "2026-01-09",
    "talks_to": "2026-01-09",
}


# The DAG permission each route needs: Airflow's method on the runs of which DAG (GET: read,
# POST: trigger). The run's tab and the page's data: the DAG they show; dead letters and
# traces: the replay DAG (they read the store it replays from).
NEEDS = {
    ("GET", "/runs/{dag_id}/{run_id}"): ("GET", DAG),
    ("GET", "/api/runs/{dag_id}/{run_id}"): ("GET", DAG),
    ("GET", "/"): ("GET", DAG),
    ("GET", "/api/windows"): ("GET", DAG),
    ("GET", "/api/backfill"): ("GET", DAG),
    ("GET", "/api/dead-letters"): ("GET", REPLAY_DAG),
    ("GET", "/api/trace"): ("GET", REPLAY_DAG),
    ("POST", "/replay"): ("POST", REPLAY_DAG),
    ("POST", "/backfill"): ("POST", DAG),
}
SCOPED_USER = "scoped-user"


def _route_templates() -> list[tuple[str, str]]:
    import airflow.settings  # puts the plugins folder on sys.path, as in every Airflow process

    assert airflow.settings.PLUGINS_FOLDER
    from talklog_console_app import create_app

    found = []
    for route in create_app().routes:
        if isinstance(route, APIRoute):
            found.extend((method, route.path) for method in sorted(route.methods))
    return found


TEMPLATES = _route_templates()
ROUTES = [(method, path.format(**PATH_VALUES)) for method, path in TEMPLATES]
TRIGGERS = [(method, path) for method, path in ROUTES if method == "POST"]


def _call(api, method: str, path: str, headers: dict[str, str] | None = None, **kwargs):
    url = f"/talklog{path}"
    if method == "POST":
        return api.client.post(url, params=QUERY, data=FORM, headers=headers, **kwargs)
    return api.client.get(url, params=QUERY, headers=headers, **kwargs)


def test_the_console_has_routes_to_check():
    assert len(ROUTES) >= 8 and len(TRIGGERS) >= 2


def test_every_route_names_the_permission_it_needs():
    assert set(TEMPLATES) == set(NEEDS)


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


@pytest.fixture
def refuse(airflow_api, monkeypatch):
    """Airflow's auth manager with DAG-scoped grants, as FAB's per-DAG permissions: the simple
    auth manager's answers, minus one (method, DAG) pair for `SCOPED_USER`."""
    from airflow.api_fastapi.app import get_auth_manager

    manager = get_auth_manager()
    grants = manager.is_authorized_dag

    def without(refused_method: str, refused_dag: str) -> None:
        def is_authorized_dag(*, method: str, user, access_entity=None, details=None) -> bool:
            asked = (method, getattr(details, "id", None))
            if user.get_name() == SCOPED_USER and asked == (refused_method, refused_dag):
                return False
            return grants(method=method, user=user, access_entity=access_entity, details=details)

        monkeypatch.setattr(manager, "is_authorized_dag", is_authorized_dag)

    return without


@pytest.fixture
def no_airflow_behind(airflow_api) -> Iterator[None]:
    """The console's REST calls to Airflow go to a port nothing listens on."""
    state = airflow_api.console.state
    kept = state.airflow_transport, state.airflow_base_url
    state.airflow_transport, state.airflow_base_url = None, "http://127.0.0.1:9"
    try:
        yield
    finally:
        state.airflow_transport, state.airflow_base_url = kept


@pytest.mark.parametrize(("method", "template"), TEMPLATES)
def test_callers_without_the_routes_dag_permission_are_refused(
    airflow_api, refuse, no_airflow_behind, method, template
):
    """An operator (trigger rights everywhere) lacking only what the route needs is refused by
    the console itself: no Airflow answers its REST calls here (a port nothing listens on), so
    a Replay or backfill that got past the console would fail to connect, not answer 403."""
    refuse(*NEEDS[method, template])
    token = airflow_api.token("op", username=SCOPED_USER)
    headers = {"Authorization": f"Bearer {token}"}
    answer = _call(airflow_api, method, template.format(**PATH_VALUES), headers)
    assert answer.status_code == 403, answer.text[:200]


@pytest.mark.parametrize(("method", "template"), [(m, t) for m, t in TEMPLATES if m == "GET"])
def test_the_same_caller_reads_with_another_dags_permission_missing(
    airflow_api, refuse, sqlite_url, monkeypatch, method, template
):
    """The control of the case above: the refusal comes from the permission it took away."""
    upgrade(sqlite_url)
    store = {"conn_type": "talklog_store", "extra": {"sqlalchemy_url": sqlite_url}}
    monkeypatch.setenv("AIRFLOW_CONN_TALKLOG_STORE", json.dumps(store))
    refuse("GET", "some_other_dag")
    token = airflow_api.token("op", username=SCOPED_USER)
    headers = {"Authorization": f"Bearer {token}"}
    answer = _call(airflow_api, method, template.format(**PATH_VALUES), headers)
    assert answer.status_code not in (401, 403), answer.text[:200]
