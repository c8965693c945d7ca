"""docker-compose.yaml, the Dockerfiles, .dockerignore, constraints.txt and .env.example agree with
each other, with uv.lock and with what the code expects.

Docker is not available where the tests run: the files are parsed, and the build contexts are
checked with the .dockerignore rules as BuildKit applies them."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (ROOT / "docker-compose.yaml").read_text(encoding="utf-8")
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES = COMPOSE["services"]
AIRFLOW_SERVICES = [name for name in SERVICES if name.startswith("airflow-")]
RUNNING_AIRFLOW_SERVICES = [name for name in AIRFLOW_SERVICES if name != "airflow-init"]
ENV_EXAMPLE = (ROOT / ".env.example").read_text(encoding="utf-8")
UID_USER = "${AIRFLOW_UID:-50000}:0"
# What `make constraints` runs, and what the header of constraints.txt records.
EXPORT_ARGS = [
    "export", "--frozen", "--no-dev", "--no-emit-workspace", "--no-hashes",
    "--package", "lineworks-talklog",
]  # fmt: skip
SHARED_SECRETS = ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY")


def pinned_airflow_version() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    pin = next(
        dep for dep in project["project"]["dependencies"] if dep.startswith("apache-airflow==")
    )
    return pin.split("==")[1]


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    lines = [
        line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("#")
    ]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    return [
        (parts[0].upper(), parts[1] if len(parts) > 1 else "")
        for parts in (line.strip().split(None, 1) for line in joined.splitlines() if line.strip())
    ]


def copies(path: Path) -> list[tuple[list[str], list[str], str]]:
    """(flags, sources, destination) of every COPY of a Dockerfile."""
    found = []
    for instruction, args in instructions(path):
        if instruction == "COPY":
            words = shlex.split(args)
            flags = [word for word in words if word.startswith("--")]
            paths = [word for word in words if not word.startswith("--")]
            found.append((flags, paths[:-1], paths[-1]))
    return found


def ignore_patterns(path: Path) -> list[tuple[bool, re.Pattern[str]]]:
    """(is an exception `!`, regex) per line, translated the way moby's patternmatcher does."""
    rules = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        regex, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        rules.append((exception, re.compile(regex)))
    return rules


def ignored(rules: list[tuple[bool, re.Pattern[str]]], path: str) -> bool:
    """Whether BuildKit leaves `path` (relative to the context) out: the last rule that matches
    the path or one of its parent folders decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for exception, regex in rules:
        if any(regex.fullmatch(candidate) for candidate in candidates):
            excluded = not exception
    return excluded


def context_files(rules) -> list[str]:
    """The files of this checkout that a build with `rules` sends (git's tracked and new files)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return [path for path in listed if not ignored(rules, path)]


PROD_RULES = ignore_patterns(ROOT / ".dockerignore")
# BuildKit reads <Dockerfile>.dockerignore next to a Dockerfile in place of the context's one.
DEV_RULES = ignore_patterns(ROOT / "devtools" / "Dockerfile.dockerignore")


def test_topology():
    assert {"postgres", "redis", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
            "airflow-worker", "airflow-triggerer", "airflow-init"} <= set(SERVICES)  # fmt: skip
    assert all(
        SERVICES[name]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        for name in AIRFLOW_SERVICES
    )
    assert all("healthcheck" in SERVICES[name] for name in RUNNING_AIRFLOW_SERVICES)


def test_airflow_services_run_the_image_built_from_the_dockerfile():
    version = pinned_airflow_version()
    stages = [
        args for instruction, args in instructions(ROOT / "Dockerfile") if instruction == "FROM"
    ]
    assert stages[-1] == f"apache/airflow:{version}-python3.11"
    for name in AIRFLOW_SERVICES:
        service = SERVICES[name]
        assert service["build"] == {"context": ".", "dockerfile": "Dockerfile"}
        assert service["image"] == f"talklog-airflow:{version}"


def test_the_image_installs_the_wheel_with_the_pins_of_the_lock():
    version = pinned_airflow_version()
    dockerfile = ROOT / "Dockerfile"
    constraint_copies = [
        dest for _, sources, dest in copies(dockerfile) if sources == ["constraints.txt"]
    ]
    assert len(constraint_copies) == 1
    (install,) = [
        args for instruction, args in instructions(dockerfile)
        if instruction == "RUN" and args.startswith("pip install")
    ]  # fmt: skip
    words = shlex.split(install)
    assert words[words.index("--constraint") + 1] == constraint_copies[0]
    assert f"apache-airflow=={version}" in words
    assert any(re.fullmatch(r"/\S+/lineworks_talklog-\*\.whl", word) for word in words)
    # The wheel comes from the first stage, built from the package's own sources only.
    (wheel_stage,) = [
        args for instruction, args in instructions(dockerfile)
        if instruction == "RUN" and args.startswith("pip wheel")
    ]  # fmt: skip
    assert "--no-deps" in wheel_stage.split()
    stage_sources = {
        source for flags, sources, _ in copies(dockerfile) if not flags for source in sources
    }
    assert {"pyproject.toml", "README.md", "src", "salesforce"} <= stage_sources


def _uv() -> str:
    local = ROOT / ".tools" / "bin" / "uv"
    found = str(local) if local.exists() else shutil.which("uv")
    if found is None:
        pytest.skip("uv is not installed (`make setup` installs the pinned one)")
    return found


def test_constraints_file_is_a_fresh_export_of_the_lock():
    exported = subprocess.run(
        [_uv(), *EXPORT_ARGS, "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    committed = (ROOT / "constraints.txt").read_text(encoding="utf-8")
    assert committed == exported.stdout, (
        "constraints.txt drifted from uv.lock: run `make constraints`"
    )
    # `make constraints` runs that very command.
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^constraints:.*\n\t(.+)$", makefile, re.M).group(1)
    assert recipe == f"$(UV) {shlex.join(EXPORT_ARGS)} --quiet > constraints.txt"


def test_constraints_pin_every_dependency_and_hold_no_dev_tool():
    lines = [
        line.strip()
        for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    pins = {}
    for line in lines:
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;]+)(?: ; .+)?", line)
        assert match, f"not an exact pin: {line}"
        pins[match.group(1).lower()] = match.group(2)
    assert pins["apache-airflow"] == pinned_airflow_version()
    assert "celery" in pins and "apache-airflow-providers-salesforce" in pins
    # Neither workspace member, and nothing only the dev tools or the tests need.
    for name in ("lineworks-talklog", "talklog-devtools", "lark", "pytest", "hypothesis", "ruff"):
        assert name not in pins, name


def test_the_production_image_holds_no_devtools_and_no_tests():
    dockerfile = ROOT / "Dockerfile"
    text = "\n".join(args for _, args in instructions(dockerfile))
    assert "devtools" not in text and "talklog_dev" not in text and "tests" not in text
    for name in ("devtools/pyproject.toml", "devtools/src/talklog_dev/cli.py", "tests/conftest.py",
                 ".venv/bin/python", "var/demo/store.db", ".env", ".git/HEAD"):  # fmt: skip
        assert ignored(PROD_RULES, name), f"{name} would be in the build context"
    sent = context_files(PROD_RULES)
    assert not [
        path for path in sent if path.startswith(("devtools/", "tests/", "bench/", "docs/"))
    ]
    assert not [path for path in sent if "__pycache__" in path or path.endswith(".pyc")]
    # Every file the Dockerfile copies is in the context.
    for flags, sources, _ in copies(dockerfile):
        if any(flag.startswith("--from") for flag in flags):
            continue
        for source in sources:
            assert (ROOT / source).exists(), source
            assert not ignored(PROD_RULES, source.rstrip("/")), (
                f"{source} is left out of the context"
            )
    assert "dags/talklog_dags.py" in sent and "constraints.txt" in sent
    assert "src/talklog_airflow/get_provider_info.py" in sent
    copied = {dest for _, _, dest in copies(dockerfile)}
    assert {"/opt/airflow/dags/talklog_dags.py", "/opt/airflow/plugins/"} <= copied


def test_the_emulator_runs_the_devtools_image():
    emulator = SERVICES["sf-emulator"]
    assert emulator["build"] == {"context": ".", "dockerfile": "devtools/Dockerfile"}
    assert emulator["image"] == "talklog-devtools:0.1.0"
    dockerfile = ROOT / "devtools" / "Dockerfile"
    runs = [args for instruction, args in instructions(dockerfile) if instruction == "RUN"]
    assert runs == ["uv sync --frozen --no-dev --no-editable --package talklog-devtools"]
    uv_version = re.search(r"^UV_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    uv_image = f"--from=ghcr.io/astral-sh/uv:{uv_version}"
    assert [uv_image] in [flags for flags, _, _ in copies(dockerfile)]
    sent = context_files(DEV_RULES)
    assert "devtools/src/talklog_dev/emulator/__main__.py" in sent and "uv.lock" in sent
    assert not [path for path in sent if path.startswith(("tests/", ".venv/", "var/", "bench/"))]
    for flags, sources, _ in copies(dockerfile):
        if not flags:
            assert all(not ignored(DEV_RULES, source) for source in sources), sources


def test_code_comes_from_the_image_not_from_mounts():
    for name in AIRFLOW_SERVICES:
        service = SERVICES[name]
        targets = {volume.split(":")[1] for volume in service["volumes"]}
        assert not targets & {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include"}
        assert {"/opt/airflow/var", "/opt/airflow/logs"} <= targets
        assert "PYTHONPATH" not in service["environment"]
    # The optional mount for trying edits without a rebuild is documented, commented out.
    assert "# - ./dags:/opt/airflow/dags" in COMPOSE_TEXT


@pytest.mark.parametrize("secret", SHARED_SECRETS)
def test_one_secret_is_set_once_and_shared_by_every_airflow_service(secret):
    # Defined once, in the x-airflow-common environment every service merges ...
    assert len(re.findall(rf"^\s+{secret}:", COMPOSE_TEXT, re.M)) == 1
    common = COMPOSE["x-airflow-common"]["environment"][secret]
    # ... taken from .env, with no default: compose refuses to start without it.
    assert common.startswith(f"${{{secret}:?")
    assert all(SERVICES[name]["environment"][secret] == common for name in AIRFLOW_SERVICES)
    # .env.example names it, commits no value and says how to generate one.
    assert re.search(rf"^{secret}=$", ENV_EXAMPLE, re.M)
    assert "openssl rand -hex 32" in ENV_EXAMPLE


def test_containers_run_as_airflow_uid():
    assert all(SERVICES[name]["user"] == UID_USER for name in RUNNING_AIRFLOW_SERVICES)
    assert SERVICES["sf-emulator"]["user"] == UID_USER
    # airflow-init runs as root, like the official one, and hands the shared volumes over.
    init = SERVICES["airflow-init"]
    assert init["user"] == "0:0"
    assert (
        'chown -R "${AIRFLOW_UID:-50000}:0" /opt/airflow/logs /opt/airflow/var'
        in init["command"][-1]
    )
    assert "mkdir -p /opt/airflow/logs /opt/airflow/var/emulator" in init["command"][-1]
    assert re.search(r"^AIRFLOW_UID=\d+$", ENV_EXAMPLE, re.M) and "id -u" in ENV_EXAMPLE


def test_the_ui_login_comes_from_the_env_file():
    init = SERVICES["airflow-init"]["environment"]
    assert init["_AIRFLOW_WWW_USER_CREATE"] == "true" and init["_AIRFLOW_DB_MIGRATE"] == "true"
    assert init["_AIRFLOW_WWW_USER_USERNAME"].startswith("${_AIRFLOW_WWW_USER_USERNAME")
    assert init["_AIRFLOW_WWW_USER_PASSWORD"].startswith("${_AIRFLOW_WWW_USER_PASSWORD")
    # `airflow users create`, which the image's entrypoint runs for it, is the FAB auth manager's.
    fab = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
    assert all(
        SERVICES[name]["environment"]["AIRFLOW__CORE__AUTH_MANAGER"] == fab
        for name in AIRFLOW_SERVICES
    )
    assert "/entrypoint airflow" in SERVICES["airflow-init"]["command"][-1]
    assert (
        "_AIRFLOW_WWW_USER_USERNAME=" in ENV_EXAMPLE
        and "_AIRFLOW_WWW_USER_PASSWORD=" in ENV_EXAMPLE
    )
    assert SERVICES["airflow-apiserver"]["ports"] == ["127.0.0.1:8080:8080"]


def test_connections_come_from_the_env_file_and_no_secret_is_committed():
    assert "AIRFLOW_CONN_TALKLOG_STORE=" in ENV_EXAMPLE
    assert "AIRFLOW_CONN_SALESFORCE_DEFAULT=" in ENV_EXAMPLE
    assert ".env" in (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    assert all(SERVICES[name]["env_file"] == [".env"] for name in AIRFLOW_SERVICES)


def test_every_image_is_pinned():
    images = {service["image"] for service in SERVICES.values()}
    for dockerfile in (ROOT / "Dockerfile", ROOT / "devtools" / "Dockerfile"):
        for instruction, args in instructions(dockerfile):
            if instruction == "FROM":
                images.add(args.split()[0])
        images |= {
            flag.split("=", 1)[1]
            for flags, _, _ in copies(dockerfile)
            for flag in flags
            if flag.startswith("--from=") and ":" in flag
        }
    assert all(re.fullmatch(r"[\w./-]+:[\w.-]+", image) for image in images), images
    assert not [image for image in images if image.endswith(":latest")], images


def test_emulator_is_an_optional_profile_reachable_by_its_service_name():
    emulator = SERVICES["sf-emulator"]
    assert emulator["profiles"] == ["emulator"]
    args = emulator["command"]
    assert args[0] == "serve"
    assert "--host=0.0.0.0" in args and "--public-name=sf-emulator" in args
    assert all(port.startswith("127.0.0.1:") for port in emulator["ports"])
    assert "healthcheck" in emulator
    # The CA it writes is where the example connection's ca_bundle points, on a shared mount
    # that airflow-init has created and handed to AIRFLOW_UID.
    assert "./var:/opt/airflow/var" in emulator["volumes"]
    assert "--ca-out=/opt/airflow/var/emulator/tls" in args
    assert emulator["depends_on"] == {
        "airflow-init": {"condition": "service_completed_successfully"}
    }
    assert '"host": "https://sf-emulator:8443"' in ENV_EXAMPLE
    assert "/opt/airflow/var/emulator/tls/ca.pem" in ENV_EXAMPLE
    assert all("sf-emulator" not in service.get("depends_on", {}) for service in SERVICES.values())


def test_the_emulator_certificate_covers_the_service_name(tmp_path):
    from cryptography import x509

    from talklog_dev.emulator import tls

    files = tls.generate(tmp_path, names=["sf-emulator"])
    cert = x509.load_pem_x509_certificate(files.cert_file.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "sf-emulator" in san.get_values_for_type(x509.DNSName)


def settings_the_code_reads() -> set[str]:
    """`TALKLOG_*`/`AIRFLOW_CONN_*` names in the provider and the DAG file (what runs in the
    Airflow containers), plus the default connections' variables."""
    sources = [
        path for folder in ("src/talklog_airflow", "dags") for path in (ROOT / folder).rglob("*.py")
    ]
    names: set[str] = set()
    for path in sources:
        text = path.read_text(encoding="utf-8")
        names |= set(re.findall(r"['\"](TALKLOG_[A-Z0-9_]+|AIRFLOW_CONN_[A-Z0-9_]+)['\"]", text))
    from talklog_airflow import alerts, dag_factory

    conn_ids = {dag_factory.STORE_CONN_ID, dag_factory.SALESFORCE_CONN_ID, alerts.ALERTS_CONN_ID}
    return names | {f"AIRFLOW_CONN_{conn_id.upper()}" for conn_id in conn_ids}


def test_every_setting_the_code_reads_is_in_the_env_example():
    present = set(re.findall(r"^(?:# )?([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE, re.M))
    missing = settings_the_code_reads() - present
    assert not missing, f"add to .env.example: {sorted(missing)}"


def test_init_migrates_both_databases_and_checks_the_connections():
    script = SERVICES["airflow-init"]["command"][-1]
    assert "airflow db migrate" in script and "talklog store upgrade" in script
    assert "AIRFLOW_CONN_" in script


def test_init_creates_the_download_pool_with_one_slot():
    from talklog_airflow.operators.ingest import LINEWORKS_POOL

    script = SERVICES["airflow-init"]["command"][-1]
    line = next(line for line in script.splitlines() if line.startswith("airflow pools set"))
    assert f'"$${{TALKLOG_LINEWORKS_POOL:-{LINEWORKS_POOL}}}" 1 ' in line
    assert script.index("airflow db migrate") < script.index(line)
