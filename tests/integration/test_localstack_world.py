"""`make airflow` starts with the demo's world linked to its emulator, or empty on request, and
runs a triggerer (talklog_dev.localstack; the topology itself: test_scheduler_backfill)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from talklog.store import make_session_factory
from talklog.store.migrate import upgrade
from talklog.store.models import LineWorksUser, Link, Message
from talklog_dev.demo_store import DEMO_CONFIG
from talklog_dev.emulator.process import EmulatorHandle
from talklog_dev.localstack import (
    TopologyConfig,
    component_commands,
    default_connections,
    demo_world,
)


def counts(url: str) -> dict[str, int]:
    with make_session_factory(url)() as session:
        return {
            model.__name__: session.scalar(sa.select(sa.func.count()).select_from(model))
            for model in (LineWorksUser, Link, Message)
        }


def test_the_demo_world_is_built_once_and_links_records_of_the_emulator(
    tmp_path: Path, sf_emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TALKLOG_TIMEZONE", raising=False)
    monkeypatch.delenv("TALKLOG_LINK_SOURCE", raising=False)
    monkeypatch.setenv("TALKLOG_OWNER_MATCH", "federation_id")  # the operator's own wins
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    settings = demo_world(sf_emulator, url)
    built = counts(url)
    assert built["Message"] == DEMO_CONFIG.messages and built["Link"] > 0
    assert settings == {"TALKLOG_TIMEZONE": DEMO_CONFIG.tz, "TALKLOG_LINK_SOURCE": "store"}
    with make_session_factory(url)() as session:
        targets = set(session.scalars(sa.select(Link.target_id)))
    in_emulator = {
        record["Id"]
        for sobject in ("Account", "Contact", "Lead", "ExternalContact__c")
        for record in sf_emulator.records(sobject)
    }
    assert targets <= in_emulator
    assert sf_emulator.records("User")
    users = len(sf_emulator.records("User"))
    demo_world(sf_emulator, url)  # a second start keeps the world
    assert counts(url) == built and len(sf_emulator.records("User")) == users


@pytest.mark.parametrize("empty", [True, False])
def test_without_the_emulator_or_on_request_the_store_starts_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty: bool
) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_TALKLOG_STORE", raising=False)
    with default_connections(tmp_path, use_emulator=False, empty=empty) as env:
        store = json.loads(env["AIRFLOW_CONN_TALKLOG_STORE"])["extra"]["sqlalchemy_url"]
    assert store.endswith("store-empty.db" if empty else "store.db")
    assert counts(store) == {"LineWorksUser": 0, "Link": 0, "Message": 0}
    assert set(env) == {"AIRFLOW_CONN_TALKLOG_STORE"}


def test_the_topology_runs_a_triggerer_and_names_each_option_once(tmp_path: Path) -> None:
    commands = component_commands(TopologyConfig(tmp_path, "sqlite:///x.db"))
    assert commands["triggerer"] == ["triggerer", "--skip-serve-logs"]
    for args in commands.values():
        options = [arg for arg in args if arg.startswith("--")]
        assert len(options) == len(set(options))
    assert "--port" not in commands["api-server"]  # AIRFLOW__API__PORT says it
