"""docker-compose.yml, checked without Docker (which these machines do not run).

The file is parsed by compose_spec (a strict Compose Specification parser:
unknown keys, bad ports or durations are errors), and what it starts is
checked against what the tests run: the same `journey` commands, the worker
config that `journey` itself loads, the Dockerfile targets it builds.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest
import typer
import yaml
from compose_spec import PyCompose

from integration.cli.commands import app
from integration.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
README = ROOT / "README.md"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    # YAML merge keys (<<) resolved first, as Docker Compose's loader does.
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def test_the_compose_file_is_valid_compose(compose: dict[str, Any]) -> None:
    parsed = PyCompose.from_json(orjson.dumps(compose).decode())
    assert set(parsed.service_names()) == {"postgres", "migrate", "api", "worker", "demo-fhir"}


def test_a_misspelt_key_would_be_caught(compose: dict[str, Any]) -> None:
    """The validator is strict enough to be worth running."""
    broken = orjson.loads(orjson.dumps(compose))
    broken["services"]["api"]["healthcheck"]["intervall"] = "10s"
    with pytest.raises(ValueError, match="intervall"):
        PyCompose.from_json(orjson.dumps(broken).decode())


def test_every_long_running_service_has_a_health_check(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("postgres", "api", "worker", "demo-fhir"):
        assert services[name]["healthcheck"]["test"], name
    for name, service in services.items():
        for needed, how in (service.get("depends_on") or {}).items():
            assert needed in services, f"{name} depends on unknown {needed}"
            wanted = how["condition"]
            if wanted == "service_healthy":
                assert "healthcheck" in services[needed], f"{name} waits on {needed}'s health"


def test_it_runs_the_commands_the_tests_run(compose: dict[str, Any]) -> None:
    services = compose["services"]
    commands = {name: services[name]["command"] for name in ("migrate", "api", "worker")}
    assert commands == {
        "migrate": ["journey", "db", "upgrade"],
        "api": ["journey", "serve"],
        "worker": ["journey", "worker"],
    }
    cli = typer.main.get_command(app)
    assert {"serve", "worker", "db", "sources"} <= set(cli.commands)  # type: ignore[attr-defined]
    for name in ("migrate", "api", "worker"):
        url = services[name]["environment"]["JOURNEY_DATABASE_URL"]
        assert url.startswith("postgresql://")
        assert "@postgres:5432/" in url


def test_the_worker_config_is_one_journey_loads_and_points_at_the_demo_server(
    compose: dict[str, Any],
) -> None:
    mount = compose["services"]["worker"]["volumes"][0]
    local, inside, _mode = mount.split(":")
    assert compose["services"]["worker"]["environment"]["JOURNEY_CONFIG"] == inside
    settings = load_settings(ROOT / local)
    [source] = settings.sources
    assert source.base_url == "http://demo-fhir:8080/fhir"
    healthcheck = " ".join(compose["services"]["demo-fhir"]["healthcheck"]["test"])
    assert "8080/fhir/metadata" in healthcheck


def test_the_images_it_builds_are_targets_of_the_dockerfile(compose: dict[str, Any]) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^FROM \S+ AS (\S+)$", dockerfile, flags=re.MULTILINE))
    built = {
        service["build"]["target"] for service in compose["services"].values() if "build" in service
    }
    assert built == targets == {"journey", "demo-fhir"}
    # The demo server is seeded and served with the commands tests/servers.py uses.
    assert "sekmet seed --count" in dockerfile
    assert "sekmet serve --host 0.0.0.0 --port 8080" in dockerfile


def _required_variables() -> set[str]:
    """Variables the file cannot do without (`${NAME:?message}`): Compose interpolates
    the whole file for every command, so each command needs them, not only `up`."""
    return set(re.findall(r"\$\{(\w+):\?", COMPOSE.read_text(encoding="utf-8")))


def _compose_commands(text: str) -> list[str]:
    """Every `docker compose ...` command line written in a text: in code spans, in
    code blocks and in comments."""
    return [
        command.strip()
        for command in re.findall(r"(?:^|`|#)([^`#\n]*docker compose [^`\n]*)", text, re.MULTILINE)
    ]


def test_every_compose_command_the_docs_give_sets_the_required_variables() -> None:
    required = _required_variables()
    assert required == {"JOURNEY_API_KEYS"}
    written = _compose_commands(README.read_text(encoding="utf-8")) + _compose_commands(
        COMPOSE.read_text(encoding="utf-8")
    )
    assert any("--scale worker=3" in command for command in written)
    missing = [
        command
        for command in written
        for name in required
        if not re.search(rf"(^|\s){name}=\S", command)
    ]
    assert missing == []


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="no Compose CLI here")
def test_compose_itself_refuses_the_file_without_them_and_takes_it_with_them() -> None:
    """Where a Compose CLI is installed (Docker's v1 `docker-compose` reads the same
    file; no daemon needed to interpolate and check it)."""
    env = {key: value for key, value in os.environ.items() if key not in _required_variables()}

    def config(**extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker-compose", "config", "--services"],
            cwd=ROOT,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
        )

    refused = config()
    assert refused.returncode != 0
    assert "set JOURNEY_API_KEYS" in refused.stderr
    taken = config(JOURNEY_API_KEYS="change-me")
    assert taken.returncode == 0, taken.stderr
    assert "worker" in taken.stdout.split()
