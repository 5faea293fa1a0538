"""`docker-compose.yml` stays true without a Docker engine: it is a valid Compose file (parsed and
checked by `compose-spec`, after YAML merge keys and `${VAR:-default}` interpolation, which
Compose itself applies first), it runs the scaled-out topology (PostgreSQL, RabbitMQ, ElasticMQ,
a migration, 2 API processes, 2 workers), every command is one the `hub` CLI takes, and every
`HUB_*` variable it sets is a setting."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from compose_spec import PyCompose

from hub.cli import _parser
from hub.settings import Settings

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
_VARIABLE = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def interpolate(value: Any) -> Any:
    """Compose's `${VAR}` / `${VAR:-default}` with no variable set: the defaults."""
    if isinstance(value, str):
        return _VARIABLE.sub(lambda m: m.group(2) or "", value)
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    return value


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = interpolate(yaml.safe_load(COMPOSE.read_text()))
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = compose["services"]
    return found


def hub_services(services: dict[str, Any]) -> dict[str, Any]:
    return {name: s for name, s in services.items() if s.get("image") == "hub:local"}


def test_the_file_is_a_valid_compose_file(compose: dict[str, Any]) -> None:
    parsed = PyCompose.from_json(json.dumps(compose))
    parsed.validate()  # networks, volumes, configs and secrets the services use are defined

    assert set(parsed.service_names()) >= {"postgres", "rabbitmq", "sqs"}


def test_the_validator_refuses_what_compose_would_refuse(compose: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(compose))
    broken["services"]["hub-worker"]["comand"] = ["worker"]
    with pytest.raises(ValueError, match="comand"):
        PyCompose.from_json(json.dumps(broken))
    broken = json.loads(json.dumps(compose))
    broken["services"]["hub-worker"]["networks"] = ["elsewhere"]
    with pytest.raises(ValueError, match="elsewhere"):
        PyCompose.from_json(json.dumps(broken)).validate()


def test_it_runs_two_api_processes_two_workers_and_one_migration(
    services: dict[str, Any],
) -> None:
    hubs = hub_services(services)
    apis = {n: s for n, s in hubs.items() if s["command"][0] == "serve"}
    workers = {n: s for n, s in hubs.items() if s["command"][0] == "worker"}
    migrations = {n: s for n, s in hubs.items() if s["command"][0] == "migrate"}

    assert len(apis) == 2
    assert all(
        "--no-worker" in s["command"] and "--no-migrate" in s["command"] for s in apis.values()
    )
    assert sum(s.get("deploy", {}).get("replicas", 1) for s in workers.values()) == 2
    assert len(migrations) == 1
    (migrate,) = migrations
    for name, service in {**apis, **workers}.items():
        condition = service["depends_on"][migrate]["condition"]
        assert condition == "service_completed_successfully", name
    published = [s["ports"][0].split(":")[0] for s in apis.values()]
    assert len(set(published)) == 2, "each API process on a host port of its own"


def test_every_command_is_one_the_hub_cli_takes(services: dict[str, Any]) -> None:
    parser = _parser()
    for name, service in hub_services(services).items():
        try:
            parser.parse_args(service["command"])
        except SystemExit as exc:  # argparse's way of refusing
            raise AssertionError(
                f"{name}: `hub {' '.join(service['command'])}` is refused"
            ) from exc


def test_every_hub_variable_it_sets_is_a_setting(services: dict[str, Any]) -> None:
    known = {f"HUB_{name.upper()}" for name in Settings.model_fields}
    for name, service in hub_services(services).items():
        variables = set(service.get("environment", {}))
        assert variables, name
        assert variables <= known, (name, sorted(variables - known))
    Settings(
        _env_file=None,
        **{k[4:].lower(): v for k, v in services["hub-worker"]["environment"].items()},
    )


def test_the_services_it_depends_on_exist_and_the_healthcheck_asks_readyz(
    services: dict[str, Any],
) -> None:
    for name, service in services.items():
        assert set(service.get("depends_on", {})) <= set(services), name
    for name, service in hub_services(services).items():
        if service["command"][0] == "serve":
            port = service["command"][service["command"].index("--port") + 1]
            assert f"127.0.0.1:{port}/readyz" in " ".join(service["healthcheck"]["test"]), name
        grace = int(str(service["stop_grace_period"]).rstrip("s"))
        assert grace > 2 * Settings.model_fields["worker_grace_seconds"].default, name
