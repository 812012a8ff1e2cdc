"""docker-compose.yml and the Dockerfile run for real in `make compose-test`; this keeps them
honest wherever the suite runs, with no Docker engine: every command exists and parses, every
variable set is one the code reads (with a value its config accepts), every long-running
service has a grpc.health.v1 healthcheck made of a project command, every dependency waits on
a condition, and the image is slim, non-root and free of test dependencies."""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from broker.config import BrokerConfig
from notifier.config import NotifierConfig
from sandbox.control.routes import parse_networks
from servicekit.config import Env, parse_listen
from tests.integration.stack import COMPOSE_FILE, LOCAL_OVERRIDES, compose_environment
from tests.plugins.broker_fixtures import TEST_KEY
from tests.plugins.processes import REPO_ROOT
from zoho.broker.v1 import broker_pb2
from zoho.notifier.v1 import notifier_pb2

COMPOSE: dict[str, Any] = __import__("yaml").safe_load(COMPOSE_FILE.read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
OUR_IMAGE = {name for name, spec in SERVICES.items() if "build" in spec}
ONE_SHOT = {"migrate", "tests"}
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
SCRIPTS: dict[str, str] = PYPROJECT["project"]["scripts"]
SERVICE_NAMES = {
    "broker": broker_pb2.DESCRIPTOR.services_by_name["TokenBrokerService"].full_name,
    "notifier": notifier_pb2.DESCRIPTOR.services_by_name["NotifierService"].full_name,
}
VARIABLES = {  # what the operator's .env provides
    "POSTGRES_PASSWORD": "pw",
    "BROKER_ENCRYPTION_KEY": TEST_KEY,
    "NOTIFIER_ENCRYPTION_KEY": TEST_KEY,
    "ZOHO_CLIENT_ID": "1000.SANDBOX",
    "ZOHO_CLIENT_SECRET": "sandbox-secret",
}


def env_of(service: str) -> dict[str, str]:
    return compose_environment(service, VARIABLES)


def names_read_by_code(*folders: str) -> set[str]:
    """Every UPPER_CASE string literal in these packages: the variables they can read."""
    names: set[str] = set()
    for folder in folders:
        for path in (REPO_ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                        and re.fullmatch(r"[A-Z][A-Z0-9_]{2,}", node.value):
                    names.add(node.value)
    return names


class _Parsed(Exception):
    def __init__(self, namespace: argparse.Namespace) -> None:
        super().__init__()
        self.namespace = namespace


def parses(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> argparse.Namespace:
    """Runs the console script's main() only as far as argument parsing: an unknown
    subcommand or option fails here (SystemExit 2) exactly as it would in the container."""
    script, *args = argv
    assert script in SCRIPTS, f"{script} is not a console script of pyproject.toml"
    module_name, function_name = SCRIPTS[script].split(":")
    main = getattr(importlib.import_module(module_name), function_name)
    if not inspect.signature(main).parameters:
        # A main() that reads no arguments (zoho-notifier) would just start serving.
        assert not args, f"{script} takes no arguments, got {args}"
        return argparse.Namespace()
    original = argparse.ArgumentParser.parse_args

    def capture(self: argparse.ArgumentParser, *a: Any, **k: Any) -> Any:
        raise _Parsed(original(self, *a, **k))

    with monkeypatch.context() as patch:
        patch.setattr(argparse.ArgumentParser, "parse_args", capture)
        try:
            main(args)
        except _Parsed as parsed:
            return parsed.namespace
    raise AssertionError(f"{argv} never parsed its arguments")


def commands() -> Iterator[tuple[str, list[str]]]:
    for name, spec in SERVICES.items():
        for key in ("entrypoint", "command"):
            if key in spec:
                yield name, list(spec[key])
        test = spec.get("healthcheck", {}).get("test")
        if test and name in OUR_IMAGE:
            assert test[0] == "CMD", f"{name}: healthcheck must be exec form [CMD, ...]"
            yield name, list(test[1:])


@pytest.mark.parametrize(("service", "argv"), list(commands()),
                         ids=[f"{s}:{' '.join(a)}" for s, a in commands()])
def test_every_command_is_a_project_command_that_parses(
    service: str, argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if argv[0] == "pytest":
        assert service == "tests"
        paths = [arg for arg in argv[1:] if not arg.startswith("-") and arg != "no:cacheprovider"]
        assert paths and all((REPO_ROOT / path).exists() for path in paths)
        return
    parses(argv, monkeypatch)


def test_notifier_takes_no_arguments_so_its_command_has_none() -> None:
    assert SERVICES["notifier"]["command"] == ["zoho-notifier"]


def test_brokers_never_migrate_and_wait_for_the_one_shot_migration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert parses(SERVICES["broker"]["command"], monkeypatch).no_migrate is True
    assert parses(SERVICES["migrate"]["command"], monkeypatch).command == "migrate"
    depends = SERVICES["broker"]["depends_on"]
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert SERVICES["migrate"]["restart"] == "no"
    assert SERVICES["broker"]["deploy"]["replicas"] == 2


def test_every_variable_set_is_read_by_the_code_and_accepted_by_its_config() -> None:
    read = names_read_by_code("broker", "notifier", "sandbox", "servicekit")
    for service in OUR_IMAGE - {"tests"}:
        unknown = set(env_of(service)) - read
        assert not unknown, f"{service} sets variables no code reads: {sorted(unknown)}"
    tests_read = read | names_read_by_code("tests/integration")
    assert not set(env_of("tests")) - tests_read
    # The values, through each service's own config reader.
    for service in ("migrate", "broker"):
        config = BrokerConfig.from_env(Env(env_of(service)))
        assert config.database_url.startswith("postgresql+psycopg://zoho:pw@postgres:5432/")
    broker = BrokerConfig.from_env(Env(env_of("broker")))
    notifier = NotifierConfig.from_env(env_of("notifier"))
    sandbox_env = env_of("sandbox")
    sandbox_listen = parse_listen(sandbox_env["SANDBOX_LISTEN"], "SANDBOX_LISTEN")
    assert parse_networks(sandbox_env["SANDBOX_CONTROL_FROM"])
    # Inside containers every server listens on all interfaces.
    assert {broker.listen.host, notifier.listen.host, sandbox_listen.host} == {"0.0.0.0"}
    assert broker.metrics_listen is not None and notifier.metrics_port
    sandbox_origin = f"http://sandbox:{sandbox_listen.port}"
    assert broker.extra_origins == [sandbox_origin] == list(notifier.extra_origins)
    assert notifier.broker_target == f"dns:///broker:{broker.listen.port}"
    tests = env_of("tests")
    assert tests["INTEGRATION_SANDBOX_ORIGIN"] == sandbox_origin
    assert tests["INTEGRATION_NOTIFIER_TARGET"] == f"notifier:{notifier.listen.port}"
    # Replicas are found through the service's name, which compose v1 and v2 both resolve
    # to every replica (their container names differ).
    assert tests["INTEGRATION_BROKER_TARGETS"] == f"broker:{broker.listen.port}"
    assert int(tests["INTEGRATION_BROKER_REPLICAS"]) == SERVICES["broker"]["deploy"]["replicas"]
    metrics_url = urlsplit(tests["INTEGRATION_BROKER_METRICS_URLS"])
    assert (metrics_url.hostname, metrics_url.port) == ("broker", broker.metrics_listen.port)
    assert urlsplit(tests["INTEGRATION_NOTIFIER_METRICS_URL"]).port == notifier.metrics_port


def test_the_local_launcher_replaces_only_what_names_a_compose_host_or_a_secret() -> None:
    for service, replaced in LOCAL_OVERRIDES.items():
        env = env_of(service)
        assert replaced <= set(env)
        kept = {k: v for k, v in env.items() if k not in replaced}
        for value in kept.values():
            assert not re.search(r"\b(sandbox|broker|notifier|postgres):\d", value), kept


def test_every_long_running_service_has_a_health_check_and_every_dependency_a_condition(
) -> None:
    for name, spec in SERVICES.items():
        if name not in ONE_SHOT:
            assert spec.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for target, dependency in (spec.get("depends_on") or {}).items():
            assert isinstance(dependency, dict) and "condition" in dependency, (name, target)
            if dependency["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[target], (name, target)
            else:
                assert dependency["condition"] == "service_completed_successfully"
                assert target in ONE_SHOT
    for service in ("broker", "notifier"):
        env = env_of(service)
        listen = env["BROKER_LISTEN" if service == "broker" else "NOTIFIER_LISTEN"]
        test = SERVICES[service]["healthcheck"]["test"]
        # zoho-health speaks grpc.health.v1 to the port the server listens on, per service.
        assert test[1:] == ["zoho-health", f"127.0.0.1:{listen.rsplit(':', 1)[1]}",
                            SERVICE_NAMES[service]]
    sandbox = SERVICES["sandbox"]["healthcheck"]["test"]
    port = env_of("sandbox")["SANDBOX_LISTEN"].rsplit(":", 1)[1]
    assert sandbox[1:] == ["zoho-health", "--http", f"http://127.0.0.1:{port}/_sandbox/health"]
    assert SERVICES["postgres"]["healthcheck"]["test"][1] == "pg_isready"


def test_every_required_secret_is_named_in_the_env_example() -> None:
    required = set(re.findall(r"\$\{(\w+):\?", COMPOSE_FILE.read_text()))
    example = (REPO_ROOT / "deploy" / "stack.env.example").read_text()
    listed = set(re.findall(r"^(\w+)=", example, re.MULTILINE))
    assert required == listed - {"COMPOSE_PROJECT_NAME"} == set(VARIABLES)
    assert not re.search(
        r"^(POSTGRES_PASSWORD|BROKER_ENCRYPTION_KEY|NOTIFIER_ENCRYPTION_KEY)=.", example,
        re.MULTILINE,
    )


def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """Instructions per stage; those before the first FROM (global ARGs) under "global"."""
    stages: dict[str, list[tuple[str, str]]] = {"global": []}
    current = stages["global"]
    text = re.sub(r"\\\n\s*", " ", (REPO_ROOT / "Dockerfile").read_text())
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        if instruction.upper() == "FROM":
            name = rest.split(" AS ")[-1].strip() if " AS " in rest else rest
            current = stages.setdefault(name, [])
        current.append((instruction.upper(), rest.strip()))
    return stages


def test_the_image_is_slim_non_root_and_the_runtime_has_no_test_dependencies() -> None:
    stages = dockerfile_stages()
    targets = {spec["build"]["target"] for spec in SERVICES.values() if "build" in spec}
    assert targets == {"runtime", "test"} <= set(stages)
    runtime = stages["runtime"]
    # The base is a build argument whose default is the official slim image.
    assert runtime[0][1].split()[0] == "${PYTHON_IMAGE}"
    defaults = dict(rest.split("=", 1) for instruction, rest in stages["global"]
                    if instruction == "ARG")
    assert re.fullmatch(r"python:3\.11[.\d]*-slim(-\w+)?", defaults["PYTHON_IMAGE"])
    for stage in ("runtime", "test"):
        users = [rest for instruction, rest in stages[stage] if instruction == "USER"]
        assert users and users[-1] not in ("root", "0"), f"{stage} runs as root"
    installs = " ".join(rest for instruction, rest in runtime if instruction == "RUN")
    assert "pip install" in installs
    assert "[dev]" not in installs and "pytest" not in installs
    copied = [rest.split()[:-1] for instruction, rest in runtime if instruction == "COPY"]
    assert all((REPO_ROOT / source).exists() for sources in copied for source in sources)
    assert not any("tests" in sources for sources in copied)
    assert all(instruction != "ARG" and "SECRET" not in rest.upper() and "KEY=" not in rest
               for instruction, rest in runtime if instruction in ("ENV", "ARG"))
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".env"} <= set(ignored)
    dependencies = PYPROJECT["project"]["dependencies"]
    assert not any(d.split("~")[0].split("=")[0] in ("pytest", "pyyaml") for d in dependencies)


def test_compose_builds_from_this_folder() -> None:
    for name in OUR_IMAGE:
        assert Path(REPO_ROOT / SERVICES[name]["build"]["context"]).resolve() == REPO_ROOT


def test_the_test_image_holds_what_the_compose_test_reads() -> None:
    copied = " ".join(rest for instruction, rest in dockerfile_stages()["test"]
                      if instruction == "COPY")
    for needed in ("tests", "docker-compose.yml", "Dockerfile", ".dockerignore", "deploy"):
        assert needed in copied.split(), needed
    assert "deploy" not in (REPO_ROOT / ".dockerignore").read_text().split()


def test_the_file_runs_on_compose_v1_and_v2() -> None:
    """docker-compose 1.29 (Debian's) refuses a top-level `name:`: the project's name is
    COMPOSE_PROJECT_NAME in the env file, which both read."""
    assert set(COMPOSE) <= {"services", "volumes", "networks"} | {
        key for key in COMPOSE if key.startswith("x-")
    }
    example = (REPO_ROOT / "deploy" / "stack.env.example").read_text()
    assert re.search(r"^COMPOSE_PROJECT_NAME=zoho-connect$", example, re.MULTILINE)
    # Nothing addresses a container by its name, which differs between v1 and v2.
    assert "zoho-connect-broker-" not in COMPOSE_FILE.read_text()
    assert "zoho-connect_broker_" not in COMPOSE_FILE.read_text()


def test_base_images_are_variables_with_the_official_defaults() -> None:
    text = COMPOSE_FILE.read_text()
    assert SERVICES["postgres"]["image"] == "${POSTGRES_IMAGE:-postgres:16-alpine}"
    for name in OUR_IMAGE:
        assert SERVICES[name]["build"]["args"]["PYTHON_IMAGE"] == \
            "${PYTHON_IMAGE:-python:3.11-slim}", name
    assert "image: python:" not in text and "image: postgres:" not in text


def test_postgres_is_healthy_only_once_it_answers_over_tcp() -> None:
    # Its init-time server listens on the socket alone; the brokers connect over TCP.
    test = SERVICES["postgres"]["healthcheck"]["test"]
    assert test[:4] == ["CMD", "pg_isready", "-h", "127.0.0.1"]
