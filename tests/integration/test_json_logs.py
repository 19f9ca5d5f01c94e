"""JOURNEY_LOG_FORMAT=json: every line `journey serve` and `journey worker` write is one
JSON object; a request's lines carry its id (the X-Request-ID it was answered with);
and nothing a Patient carried, nor the ids in a path, reaches the log."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from integration.api.app import create_app
from integration.api.request_log import install_request_log
from integration.config import Settings
from integration.logs import JsonFormatter
from tests.conftest import patient
from tests.servers import JOURNEY, JourneyProcess

SQLITE = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
API_KEY = "log-key"
PUSH_KEY = "log-push-key"
NAME = "Quillfeather"
FHIR = {"Authorization": f"Bearer {PUSH_KEY}", "Content-Type": "application/fhir+json"}
API = {"Authorization": f"Bearer {API_KEY}"}


def json_lines(text: str) -> list[dict[str, Any]]:
    """Each line of `text` as the object it must be (any other line fails the test)."""
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines
    parsed = [orjson.loads(line) for line in lines]
    for line in parsed:
        assert {"time", "level", "logger", "message"} <= set(line), line
    return parsed


def deployment(folder: Path, store_url: str) -> dict[str, str]:
    (folder / "journey.toml").write_text(
        '[[push_clients]]\nsource = "ehr"\nkey_env = "LOG_PUSH_KEY"\n', encoding="utf-8"
    )
    return {
        "JOURNEY_LOG_FORMAT": "json",
        "JOURNEY_DATABASE_URL": store_url,
        "JOURNEY_API_KEYS": API_KEY,
        "LOG_PUSH_KEY": PUSH_KEY,
        "JOURNEY_VALIDATION_PROCESSES": "0",
    }


@SQLITE
def test_journey_serve_logs_one_json_object_a_line_with_request_ids_and_no_patient_data(
    tmp_path: Path, store_url: str
) -> None:
    server = JourneyProcess("serve", tmp_path, deployment(tmp_path, store_url))
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            pushed = http.put(
                "/fhir/Patient/mrn-4471",
                headers=FHIR,
                content=orjson.dumps(patient("mrn-4471", name=[{"family": NAME}])),
            )
            assert pushed.status_code == 201, pushed.text
            [person] = http.get("/people", headers=API).json()["items"]
            read = http.get(f"/people/{person['id']}", headers=API)
            assert read.status_code == 200
            assert http.get("/metrics", headers=API).status_code == 200
    finally:
        server.stop()
    text = (tmp_path / "serve.log").read_text(encoding="utf-8")
    lines = json_lines(text)

    by_request = {line.get("request_id"): line for line in lines if line.get("route")}
    push_line = by_request[pushed.headers["x-request-id"]]
    assert push_line["route"] == "/fhir/{resource_type}/{resource_id}"
    assert push_line["message"].startswith("PUT /fhir/{resource_type}/{resource_id} 201 ")
    assert (push_line["method"], push_line["status"]) == ("PUT", 201)
    read_line = by_request[read.headers["x-request-id"]]
    assert read_line["route"] == "/people/{person_id}"
    assert any(line["logger"].startswith("uvicorn") for line in lines)  # its lines too
    # What was loaded at start is set aside from garbage collection (no full-heap pauses).
    [frozen] = [line for line in lines if "set aside from garbage collection" in line["message"]]
    assert int(frozen["message"].split()[0]) > 10_000
    for private in (NAME, "mrn-4471", person["id"]):
        assert private not in text


@SQLITE
def test_journey_worker_logs_one_json_object_a_line(tmp_path: Path, store_url: str) -> None:
    done = subprocess.run(
        [JOURNEY, "worker", "--once"],
        env={**os.environ, **deployment(tmp_path, store_url)},
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert done.stdout == b""
    lines = json_lines(done.stderr.decode())
    # Its start and end, which it prints to the terminal with text logs.
    assert [line["logger"] for line in lines] == ["journey.worker", "journey.worker"]
    assert "source(s)" in lines[0]["message"]
    assert "stopped" in lines[1]["message"]


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """What the API's logger writes, as the JSON handler `journey serve` would write it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    api = logging.getLogger("journey.api")
    api.addHandler(handler)
    level = api.level
    api.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        api.removeHandler(handler)
        api.setLevel(level)


@SQLITE
def test_a_500_is_logged_under_its_request_id_without_the_exceptions_message(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, captured: io.StringIO
) -> None:
    def boom(*_args: Any) -> None:
        raise RuntimeError(f"no people named {NAME}")

    monkeypatch.setattr("integration.store.queries.list_people", boom)
    app = create_app(Settings(api_keys=[API_KEY], log_format="json"), engine)
    install_request_log(app)
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/people", headers=API)
    assert answer.status_code == 500
    request_id = answer.headers["x-request-id"]
    assert answer.json()["correlation_id"] == request_id
    lines = json_lines(captured.getvalue())
    assert {line["request_id"] for line in lines} == {request_id}
    [failure] = [line for line in lines if line["level"] == "ERROR"]
    assert "builtins.RuntimeError" in failure["message"]
    assert NAME not in captured.getvalue()
    [request_line] = [line for line in lines if line.get("route")]
    assert request_line["message"].startswith("GET /people 500 ")


def test_an_exception_logged_with_its_traceback_keeps_its_type_not_its_message() -> None:
    try:
        raise ValueError(f"birth date of {NAME} unreadable")
    except ValueError:
        record = logging.LogRecord(
            "journey", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    line = orjson.loads(JsonFormatter().format(record))
    assert line["message"] == "failed"
    assert "builtins.ValueError" in line["exception"]
    assert NAME not in line["exception"]
