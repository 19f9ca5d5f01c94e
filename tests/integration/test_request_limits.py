"""Requests past the API's limits: a read that takes too long is answered 503 with
Retry-After at the time limit, not when it ends (writes are never cut), and an
oversize body is a 413 however it is sent."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from integration.api.app import create_app
from integration.config import Settings
from integration.store import queries
from tests.conftest import patient

KEY = "time-key"
LIMIT = 0.5
pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


PUSH = "time-push-key"


@pytest.fixture
def client(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("TIME_PUSH_KEY", PUSH)
    settings = Settings(
        api_keys=[KEY],
        database_url=str(engine.url),
        request_time_limit_seconds=LIMIT,
        push_clients=[{"source": "clinic", "key_env": "TIME_PUSH_KEY"}],
    )
    with TestClient(create_app(settings, engine)) as test_client:
        yield test_client


AUTH = {"Authorization": f"Bearer {KEY}"}


def slowly(real: Any, seconds: float) -> Any:
    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(seconds)
        return real(*args, **kwargs)

    return slow


def test_a_slow_read_is_a_503_at_the_limit_and_the_next_read_is_fine(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_list = queries.list_people
    monkeypatch.setattr(queries, "list_people", slowly(real_list, 3.0))
    started = time.monotonic()
    answer = client.get("/people", headers=AUTH)
    waited = time.monotonic() - started
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "5"
    assert answer.json()["detail"] == (
        "the request took longer than this server's time limit of 0.5 s"
    )
    assert waited < 2.5, "answered at the limit, not when the read ended"
    monkeypatch.setattr(queries, "list_people", real_list)
    assert client.get("/people", headers=AUTH).status_code == 200


def test_on_fhir_it_is_an_operation_outcome(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from integration.api.routes import fhir

    monkeypatch.setattr(fhir, "visible_person", slowly(fhir.visible_person, 3.0))
    answer = client.get("/fhir/EpisodeOfCare", params={"patient": "someone"}, headers=AUTH)
    assert answer.status_code == 503
    outcome = answer.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "timeout"


def test_a_write_runs_to_its_end(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """A push slower than the limit still gets its real answer: it was stored."""
    from integration.push import service

    real = service.PushService.write_one

    def slow_write(self: Any, *args: Any, **kwargs: Any) -> Any:
        time.sleep(1.0)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(service.PushService, "write_one", slow_write)
    answer = client.put(
        "/fhir/Patient/slow-1",
        json=patient("slow-1"),
        headers={"Authorization": f"Bearer {PUSH}", "Content-Type": "application/fhir+json"},
    )
    assert answer.status_code in (200, 201), answer.text


def test_an_oversize_api_body_is_a_413_problem_declared_or_streamed(client: TestClient) -> None:
    """The journey API's bodies are small (a subscription, a reviewer's decision): past
    max_request_bytes (1 MiB) the answer is 413, whether the size is declared or not."""
    huge = b'{"url": "http://127.0.0.1:9/x", "description": "' + b"x" * 1_100_000 + b'"}'
    declared = client.post(
        "/subscriptions", content=huge, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert declared.status_code == 413
    assert declared.headers["content-type"] == "application/problem+json"
    assert "1048576-byte limit" in declared.json()["detail"]

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(huge), 65536):
            yield huge[start : start + 65536]

    streamed = client.post(
        "/subscriptions", content=chunks(), headers={**AUTH, "Content-Type": "application/json"}
    )
    assert streamed.status_code == 413
    assert "1048576-byte limit" in streamed.json()["detail"]
    small = client.post("/subscriptions", json={"url": "http://127.0.0.1:9/x"}, headers=AUTH)
    assert small.status_code == 201
