"""`make airflow`: the docker-compose topology without containers, on this machine.

Runs Airflow's scheduler, dag-processor, triggerer and api-server (and, with CeleryExecutor, a
Celery worker) as separate processes, each in its own process group, with ``AIRFLOW_HOME`` under
``var/airflow``. The metadata database is a dedicated PostgreSQL database (``talklog_airflow``,
created when missing) when 127.0.0.1:5432 answers, a SQLite file otherwise (LocalExecutor with
parallelism 1: Airflow 3 has no SequentialExecutor, and SQLite takes one writer). Every server
listens on 127.0.0.1 only (the scheduler's, triggerer's and worker's log servers, which bind every
interface, are not started: the api-server reads the task logs from the shared
``AIRFLOW_HOME/logs``).
Ctrl-C or exit stops every process group by its id.

    python -m talklog_dev.localstack        (`make airflow`)

Environment: ``TALKLOG_AIRFLOW_EXECUTOR`` (LocalExecutor | CeleryExecutor),
``TALKLOG_AIRFLOW_PORT`` (api-server, default 8080), ``TALKLOG_AIRFLOW_POSTGRES_URL`` (admin URL
of the server that gets the metadata database), ``TALKLOG_AIRFLOW_REDIS_URL`` (Celery broker,
default ``redis://127.0.0.1:6379/0``), ``TALKLOG_AIRFLOW_EMPTY=1`` (as ``--empty``).
Connections come from ``AIRFLOW_CONN_*`` as usual; when none names Salesforce and the store, the
runner starts the local emulator and a SQLite store holding the demo's world (``make demo``'s
people, rooms, links and talk; its linked records and staff users in the emulator), built on the
first start and kept after; ``--empty`` starts with an empty store and emulator instead.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Generator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
import sqlalchemy as sa

from talklog.store import display_url, make_session_factory
from talklog.store.models import LineWorksUser

if TYPE_CHECKING:
    from talklog_dev.emulator.process import EmulatorHandle

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_HOME = REPO_ROOT / "var" / "airflow"
DEFAULT_POSTGRES_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
LOCAL = "LocalExecutor"
CELERY = "CeleryExecutor"
SIMPLE_AUTH = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
STOP_TIMEOUT_S = 20.0
EMPTY_ENV = "TALKLOG_AIRFLOW_EMPTY"
LINEWORKS_POOL = os.environ.get("TALKLOG_LINEWORKS_POOL", "lineworks_download")
POOL_DESCRIPTION = "LINE WORKS message-content downloads, one at a time"


def answers(host: str, port: int) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def url_answers(url: str) -> bool:
    """True when the host:port of a database or broker URL accepts connections."""
    parts = urlsplit(url)
    default = {"redis": 6379}.get(parts.scheme, 5432)
    return answers(parts.hostname or "127.0.0.1", parts.port or default)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_postgres_database(admin_url: str, name: str) -> str:
    """Create database `name` on the admin URL's server when missing; its SQLAlchemy URL."""
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            exists = conn.scalar(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            )
            if not exists:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        return engine.url.set(database=name).render_as_string(hide_password=False)
    finally:
        engine.dispose()


def drop_postgres_database(admin_url: str, name: str) -> None:
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


@dataclass
class TopologyConfig:
    """Where and how the local Airflow runs."""

    home: Path
    database_url: str  # SQLAlchemy URL of the metadata database
    executor: str = LOCAL
    api_port: int = 8080
    broker_url: str = DEFAULT_REDIS_URL
    celery_queue: str = "default"
    parallelism: int = 4
    fast_scheduling: bool = False  # short loops for tests (more CPU when idle)
    env: dict[str, str] = field(default_factory=dict)  # connections, TALKLOG_* settings

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def __post_init__(self) -> None:
        if self.executor not in (LOCAL, CELERY):
            raise ValueError(f"executor must be {LOCAL} or {CELERY}, not {self.executor}")
        if self.database_url.startswith("sqlite"):
            if self.executor == CELERY:
                raise ValueError("CeleryExecutor needs PostgreSQL (its result backend and locks)")
            self.parallelism = 1  # SQLite takes one writer at a time


def airflow_env(config: TopologyConfig) -> dict[str, str]:
    """The environment of every Airflow process: this process's, minus its Airflow settings."""
    base = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("AIRFLOW__") and key != "AIRFLOW_HOME"
    }
    env = {
        **base,
        "AIRFLOW_HOME": str(config.home),
        **_core_settings(config),
        **(_celery_settings(config) if config.executor == CELERY else {}),
        **(_fast_settings() if config.fast_scheduling else {}),
        **config.env,
    }
    return env


def _core_settings(config: TopologyConfig) -> dict[str, str]:
    return {
        "AIRFLOW__CORE__EXECUTOR": config.executor,
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__PARALLELISM": str(config.parallelism),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{config.api_url}/execution/",
        "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH,
        # Local only (127.0.0.1): everyone who reaches the UI is an admin, no password.
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": config.database_url,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(config.api_port),
        "AIRFLOW__API__BASE_URL": config.api_url,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": _secret(config.home, "jwt_secret"),
        "AIRFLOW__API__SECRET_KEY": _secret(config.home, "api_secret_key"),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(config.home / "logs"),
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
    }


def _celery_settings(config: TopologyConfig) -> dict[str, str]:
    backend = config.database_url.replace("postgresql+psycopg2://", "postgresql://", 1)
    return {
        "AIRFLOW__CELERY__BROKER_URL": config.broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{backend}",
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": config.celery_queue,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(config.parallelism),
    }


def _fast_settings() -> dict[str, str]:
    """Shorter scheduler and parser loops: runs follow each other in about a second."""
    return {
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "1",
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL": "1",
    }


def _secret(home: Path, name: str) -> str:
    """A random secret kept in AIRFLOW_HOME, shared by every process of the topology."""
    path = home / f".{name}"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(64), encoding="utf-8")  # 64+ bytes: HS512
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()


def component_commands(config: TopologyConfig) -> dict[str, list[str]]:
    """Each process of the topology and its `airflow` arguments."""
    commands = {
        "api-server": ["api-server"],  # host and port: AIRFLOW__API__HOST and __PORT
        "scheduler": ["scheduler", "--skip-serve-logs"],
        "dag-processor": ["dag-processor"],
        "triggerer": ["triggerer", "--skip-serve-logs"],  # deferrable operators' triggers
    }
    if config.executor == CELERY:
        commands["celery-worker"] = [
            "celery", "worker", "--skip-serve-logs", "--queues", config.celery_queue,
            "--concurrency", str(config.parallelism), "--without-gossip", "--without-mingle",
            "--celery-hostname", f"talklog-{uuid.uuid4().hex[:8]}@%h",
        ]  # fmt: skip
    return commands


def airflow_executable() -> str:
    """The `airflow` script of this interpreter's environment."""
    beside = Path(sys.executable).with_name("airflow")
    return str(beside) if beside.exists() else shutil.which("airflow") or "airflow"


@dataclass
class Component:
    name: str
    process: subprocess.Popen
    log_path: Path
    log: IO[bytes]


class LocalAirflow:
    """A running local topology: its processes, its CLI and its REST API."""

    def __init__(self, config: TopologyConfig) -> None:
        self.config = config
        self.env = airflow_env(config)
        self.components: dict[str, Component] = {}
        self.http = requests.Session()
        self.http.trust_env = False  # no proxy for 127.0.0.1

    # -- lifecycle ---------------------------------------------------------------------------

    def migrate(self) -> None:
        """`airflow db migrate` (SQLite ~5 s, PostgreSQL ~15 s on a fresh database)."""
        self.config.home.mkdir(parents=True, exist_ok=True)
        self.cli("db", "migrate", timeout=600)
        # LINE WORKS downloads run one at a time across every DAG (talklog_airflow.operators.
        # ingest): the pool the ingestion tasks run in, with one slot.
        self.cli("pools", "set", LINEWORKS_POOL, "1", POOL_DESCRIPTION, timeout=120)

    def start(self) -> None:
        """Start every component in its own process group; logs in AIRFLOW_HOME/components."""
        log_dir = self.config.home / "components"
        log_dir.mkdir(parents=True, exist_ok=True)
        for name, args in component_commands(self.config).items():
            log_path = log_dir / f"{name}.log"
            log = log_path.open("ab")
            process = subprocess.Popen(
                [airflow_executable(), *args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.config.home,
            )
            self.components[name] = Component(name, process, log_path, log)

    def stop(self) -> None:
        """SIGTERM every process group, then SIGKILL the ones still there after a grace period."""
        for component in self.components.values():
            _signal_group(component.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for component in self.components.values():
            try:
                component.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(component.process.pid, signal.SIGKILL)
                component.process.wait(timeout=10)
            _signal_group(component.process.pid, signal.SIGKILL)  # stragglers of the group
            component.log.close()
        self.components.clear()
        self.http.close()

    def __enter__(self) -> LocalAirflow:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def check_alive(self) -> None:
        for component in self.components.values():
            code = component.process.poll()
            if code is not None:
                raise RuntimeError(
                    f"{component.name} exited with {code}:\n{self.tail(component.name)}"
                )

    def tail(self, name: str, lines: int = 40) -> str:
        text = self.components[name].log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, timeout: float = 180.0) -> dict[str, Any]:
        """Until the api-server reports a healthy metadata DB, scheduler, dag-processor and
        triggerer."""
        deadline = time.monotonic() + timeout
        health: dict[str, Any] = {}
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(requests.RequestException, ValueError):
                health = self.api("GET", "/api/v2/monitor/health")
                parts = ("metadatabase", "scheduler", "dag_processor", "triggerer")
                if all(health.get(p, {}).get("status") == "healthy" for p in parts):
                    return health
            time.sleep(0.5)
        raise TimeoutError(f"Airflow not ready after {timeout} s: {health}")

    # -- CLI and REST ------------------------------------------------------------------------

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run `airflow ARGS` with the topology's environment; raise with its output on failure."""
        result = subprocess.run(
            [airflow_executable(), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.config.home,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"airflow {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    def api(self, method: str, path: str, payload: Any = None, **params: Any) -> Any:
        """Call the REST API (all-admins auth on 127.0.0.1: no token needed)."""
        response = self.http.request(
            method, self.config.api_url + path, json=payload, params=params or None, timeout=30
        )
        response.raise_for_status()
        return response.json() if response.content else None

    def wait_dag(self, dag_id: str, timeout: float = 120.0) -> dict[str, Any]:
        """Until the dag-processor has parsed and stored `dag_id`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(requests.HTTPError):
                return self.api("GET", f"/api/v2/dags/{dag_id}")
            time.sleep(0.5)
        raise TimeoutError(f"DAG {dag_id} not parsed after {timeout} s")

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

    def dag_runs(self, dag_id: str, **params: Any) -> list[dict[str, Any]]:
        body = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns", limit=100, **params)
        return body["dag_runs"]


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


@contextlib.contextmanager
def running(config: TopologyConfig, ready_timeout: float = 180.0) -> Generator[LocalAirflow]:
    """Migrate, start, wait until healthy; stop every process group on exit (also on errors)."""
    topology = LocalAirflow(config)
    topology.migrate()
    try:
        topology.start()
        topology.wait_ready(ready_timeout)
        yield topology
    finally:
        topology.stop()


# -- `make airflow` ------------------------------------------------------------------------------


def metadata_database(home: Path, admin_url: str) -> str:
    """PostgreSQL database `talklog_airflow` when the server answers, else a SQLite file."""
    if url_answers(admin_url):
        return ensure_postgres_database(admin_url, "talklog_airflow")
    return f"sqlite:///{home / 'airflow.db'}"


def config_from_environment(home: Path) -> TopologyConfig:
    admin_url = os.environ.get("TALKLOG_AIRFLOW_POSTGRES_URL", DEFAULT_POSTGRES_ADMIN_URL)
    database_url = metadata_database(home, admin_url)
    broker = os.environ.get("TALKLOG_AIRFLOW_REDIS_URL", DEFAULT_REDIS_URL)
    executor = os.environ.get("TALKLOG_AIRFLOW_EXECUTOR", LOCAL)
    if executor == CELERY and not url_answers(broker):
        raise SystemExit(f"CeleryExecutor needs Redis at {broker}: it does not answer")
    port = int(os.environ.get("TALKLOG_AIRFLOW_PORT", "8080"))
    return TopologyConfig(home, database_url, executor, port, broker_url=broker)


@contextlib.contextmanager
def default_connections(home: Path, use_emulator: bool, empty: bool) -> Generator[dict[str, str]]:
    """`AIRFLOW_CONN_*` for what the environment leaves open: the emulator and a SQLite store,
    which hold the demo's world unless `empty` (then: their own, empty files)."""
    env: dict[str, str] = {}
    store_url = None
    if "AIRFLOW_CONN_TALKLOG_STORE" not in os.environ:
        from talklog.store.migrate import upgrade

        store_url = f"sqlite:///{home / ('store-empty.db' if empty else 'store.db')}"
        upgrade(store_url)
        store = {"conn_type": "talklog_store", "extra": {"sqlalchemy_url": store_url}}
        env["AIRFLOW_CONN_TALKLOG_STORE"] = json.dumps(store)
        print(
            f"message store: {display_url(store_url)}"
            " (set AIRFLOW_CONN_TALKLOG_STORE to use another)"
        )
    if not use_emulator or "AIRFLOW_CONN_SALESFORCE_DEFAULT" in os.environ:
        if store_url and not empty:
            print("demo world: not built (its linked records live in the local emulator)")
        yield env
        return
    from talklog_dev.emulator.process import run_emulator

    state = home / "emulator" / ("state-empty.db" if empty else "state.db")
    with run_emulator(home / "emulator", "--state", str(state)) as sf:
        print(f"Salesforce emulator: {sf.instance_url} (pid {sf.pid})")
        if store_url and not empty:
            env.update(demo_world(sf, store_url))
        yield {**env, **sf.airflow_conn_env()}


def demo_world(sf: EmulatorHandle, store_url: str) -> dict[str, str]:
    """`make demo`'s world, talk included, in the store and the emulator (once: an earlier
    start's is kept); the settings it is read with, where the environment leaves them open."""
    from talklog_dev.demo import staff_users, target_ids
    from talklog_dev.demo_store import DEMO_CONFIG, TIME_ZONE
    from talklog_dev.synth.generator import generate

    first, last = DEMO_CONFIG.day, DEMO_CONFIG.day + dt.timedelta(days=DEMO_CONFIG.days - 1)
    with make_session_factory(store_url)() as session:
        built = session.scalar(sa.select(sa.func.count()).select_from(LineWorksUser))
    if built:
        print("demo world: kept from an earlier start (rm -rf var/airflow for a new one)")
    else:
        config = replace(DEMO_CONFIG, target_ids=target_ids(sf))
        report = generate(store_url, config)
        print(
            f"demo world: {report.lw_users} staff, {report.line_users} LINE customers,"
            f" {sum(report.links_by_target.values())} links, {report.messages:,} messages"
        )
        staff_users(sf, store_url, config)
    print(
        f"  its talks are of {first} to {last} ({TIME_ZONE}): unpause talklog_link_sync and a"
        " talk-log DAG, then backfill those talk days (the Talk logs page in the UI)"
    )
    settings = {
        "TALKLOG_TIMEZONE": TIME_ZONE,
        "TALKLOG_OWNER_MATCH": "email",
        "TALKLOG_LINK_SOURCE": "store",  # the generator authors the world's links in the store
    }
    return {key: value for key, value in settings.items() if key not in os.environ}


def print_banner(topology: LocalAirflow) -> None:
    config = topology.config
    print(f"\nAirflow UI and REST API: {config.api_url}  (executor {config.executor})")
    print(f"metadata DB: {sa.make_url(config.database_url).render_as_string()}")
    print(f"AIRFLOW_HOME: {config.home}; component logs in {config.home / 'components'}")
    for name, component in topology.components.items():
        print(f"  {name:<14} pid/pgid {component.process.pid}")
    print("CLI against it: `make airflow-cli ARGS='dags list'`. Ctrl-C stops everything.\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m talklog_dev.localstack", description=__doc__)
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME, help="AIRFLOW_HOME")
    parser.add_argument(
        "--no-emulator",
        action="store_true",
        help="do not start the emulator when AIRFLOW_CONN_SALESFORCE_DEFAULT is unset",
    )
    parser.add_argument(
        "--empty",
        action="store_true",
        default=os.environ.get(EMPTY_ENV, "") == "1",
        help=f"an empty store and emulator, not the demo's world (default: ${EMPTY_ENV}=1)",
    )
    args = parser.parse_args(argv)
    args.home.mkdir(parents=True, exist_ok=True)
    config = config_from_environment(args.home.resolve())
    # Ctrl-C and SIGTERM both unwind through the finally blocks that stop every process group
    # (SIGINT explicitly: a shell starting us in the background would have it ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with default_connections(config.home, not args.no_emulator, args.empty) as conn_env:
        config.env.update(conn_env)
        write_env_file(config)
        try:
            with running(config) as topology:
                print_banner(topology)
                while True:
                    topology.check_alive()
                    time.sleep(1)
        except KeyboardInterrupt:
            print("\nstopping...")
    print("stopped every Airflow process group")
    return 0


def write_env_file(config: TopologyConfig) -> Path:
    """`AIRFLOW_HOME/env.sh`: source it to run the `airflow` CLI against this topology."""
    path = config.home / "env.sh"
    env = airflow_env(config)
    keys = sorted(key for key in env if key.startswith(("AIRFLOW", "TALKLOG_")))
    lines = [f"export {key}={_shell_quote(env[key])}" for key in keys]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def _shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


if __name__ == "__main__":
    sys.exit(main())
