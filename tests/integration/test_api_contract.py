"""What the API promises in its OpenAPI document, and that it keeps it: every answer a
route gives, success or error, has the status, media type and schema the document
declares for it."""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import schemathesis
import schemathesis.engine
from fastapi import FastAPI
from fastapi.testclient import TestClient
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from schemathesis.config import SchemathesisConfig
from schemathesis.engine.events import FatalError, NonFatalError, ScenarioFinished
from schemathesis.python.asgi import shutdown_lifespans
from sqlalchemy import Engine

from integration.access.scopes import Permission
from integration.api.app import create_app
from integration.cli.demo_population import PAYER, PROVIDER, write_sample
from integration.clock import utc_now
from integration.config import Settings
from integration.store.engine import open_store
from integration.store.leases import ensure_units
from integration.store.sync_state import record_run
from tests.conftest import ImportFn, refuse_rows

API_KEY = "contract-key"
PUSH_KEY = "contract-push-key"
API = {"Authorization": f"Bearer {API_KEY}"}
PUSH = {"Authorization": f"Bearer {PUSH_KEY}", "Content-Type": "application/fhir+json"}
SOURCE = {"name": "riverside-ehr", "kind": "provider", "base_url": "http://127.0.0.1:9/fhir"}


def contract_settings(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Both kinds of key configured, one source to pull from (never reached)."""
    monkeypatch.setenv("CONTRACT_PUSH_KEY", PUSH_KEY)
    return Settings(
        api_keys=[API_KEY],
        database_url=str(engine.url),
        sources=[{**SOURCE, "mode": "rest", "max_attempts": 1}],
        push_clients=[{"source": "riverside", "key_env": "CONTRACT_PUSH_KEY"}],
        max_push_bytes=64 * 1024,
        # schemathesis sends thousands of requests with one key: every one is answered.
        rate_limit_per_minute=0,
    )


@pytest.fixture
def app(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> FastAPI:
    return create_app(contract_settings(engine, monkeypatch), engine)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


# Live Server-Sent Event streams, which never end on their own.
STREAMS = ["/feed/stream"]


# ---- reading the document ----


@cache
def _templates(paths: tuple[str, ...]) -> list[tuple[re.Pattern[str], str]]:
    # A literal path (/fhir/metadata) wins over a template that also matches it.
    ordered = sorted(paths, key=lambda p: (p.count("{"), p))
    return [(re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", p) + "$"), p) for p in ordered]


def template_of(spec: dict[str, Any], path: str, method: str) -> str:
    for pattern, template in _templates(tuple(spec["paths"])):
        if pattern.match(path) and method.lower() in spec["paths"][template]:
            return template
    raise AssertionError(f"{method} {path} is in no path of the OpenAPI document")


def assert_as_declared(spec: dict[str, Any], response: httpx.Response) -> Any:
    """The response's status, media type and body are what the document declares."""
    request = response.request
    template = template_of(spec, request.url.path, request.method)
    operation = spec["paths"][template][request.method.lower()]
    where = f"{request.method} {template} -> {response.status_code}"
    status = str(response.status_code)
    assert status in operation["responses"], f"{where}: status not declared"
    media = response.headers["content-type"].split(";")[0]
    content = operation["responses"][status].get("content", {})
    assert media in content, f"{where}: {media} not declared (declared: {list(content)})"
    if media == "text/csv":  # the CSV form of a JSON answer (e.g. ?format=csv)
        header = response.text.splitlines()[0]
        assert header.count(",") >= 1, f"{where}: CSV without a header row"
        return response.text
    place = ("paths", template, request.method.lower(), "responses", status, "content", media)
    pointer = "/".join(part.replace("~", "~0").replace("/", "~1") for part in place)
    registry: Registry[Any] = Registry().with_resource(
        "urn:openapi", Resource.from_contents(spec, default_specification=DRAFT202012)
    )
    validator = jsonschema.Draft202012Validator(
        {"$ref": f"urn:openapi#/{pointer}/schema"}, registry=registry
    )
    body = response.json()
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]
    assert not errors, f"{where}: body does not match its declared schema: {errors}"
    return body


# ---- the document itself ----


TEXT_FORMS = ("text/csv", "text/event-stream", "text/plain", "application/openmetrics-text")


def test_every_answer_is_declared_with_its_real_schema_and_media_type(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path, item in spec["paths"].items():
        fhir = path.startswith("/fhir")
        for method, operation in item.items():
            where = f"{method.upper()} {path}"
            responses = operation["responses"]
            assert "422" not in responses or fhir, f"{where}: invalid parameters answer 400"
            assert "500" in responses, where
            for status, response in responses.items():
                if status == "204":  # no content, by definition
                    assert "content" not in response, f"{where} {status}"
                    continue
                for media, declared in response["content"].items():
                    assert declared["schema"] != {"type": "string"}, f"{where} {status}"
                    if media in TEXT_FORMS:
                        # A CSV alternative of a 200, a stream, or the metrics'
                        # exposition text: its form is described.
                        assert status == "200", f"{where} {status}"
                        assert declared["schema"].get("description"), f"{where} {status}"
                    elif fhir:
                        assert media == "application/fhir+json", f"{where} {status}"
                    elif int(status) >= 400 and (path, status) != ("/healthz", "503"):
                        assert media == "application/problem+json", f"{where} {status}"
                    else:
                        assert media == "application/json", f"{where} {status}"
            if operation.get("security"):
                assert "401" in responses, where
    assert "HTTPValidationError" not in spec["components"]["schemas"]


def test_keys_are_declared_as_bearer_schemes_per_part_of_the_api(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {**schemes["ApiKey"], "type": "http", "scheme": "bearer"}
    assert schemes["PushKey"] == {**schemes["PushKey"], "type": "http", "scheme": "bearer"}
    scopes = {p.value for p in Permission}
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            public = path in ("/healthz", "/fhir/metadata")
            security = operation.get("security", [])
            if public:
                assert security == [], f"{method} {path}"
            elif "/fhir" in path:
                assert security == [{"PushKey": []}], f"{method} {path}"
            else:
                # Each API operation names the journey scopes it needs.
                [requirement] = security
                needed = requirement["ApiKey"]
                assert needed, f"{method} {path}"
                for scope in needed:
                    assert scope in scopes, f"{method} {path}"
                    assert scope in schemes["ApiKey"]["description"]
            # The key is a security scheme, not a header parameter clients fill in.
            names = [p["name"].lower() for p in operation.get("parameters", [])]
            assert "authorization" not in names, f"{method} {path}"


def test_fhir_writes_declare_their_bodies_in_both_media_types(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path, method, schema in [
        ("/fhir", "post", "RequestBundle"),
        ("/fhir/{resource_type}", "post", "FhirResource"),
        ("/fhir/{resource_type}/{resource_id}", "put", "FhirResource"),
    ]:
        body = paths[path][method]["requestBody"]
        assert body["required"] is True
        assert set(body["content"]) == {"application/fhir+json", "application/json"}
        for declared in body["content"].values():
            assert declared["schema"] == {"$ref": f"#/components/schemas/{schema}"}


# ---- every route's answers, against the document ----


def test_journey_api_answers_match_the_document(
    client: TestClient, engine: Engine, import_files: ImportFn, tmp_path: Path
) -> None:
    paths = write_sample(tmp_path / "data", people=6)
    import_files(paths[PROVIDER], source=PROVIDER)
    import_files(paths[PAYER], source=PAYER)
    now = utc_now()
    with engine.begin() as conn:  # a source that has synced once and has a worker unit
        record_run(conn, SOURCE["name"], "Patient", now, now, None, {"new": 3, "pages": 1})
        ensure_units(conn, [(SOURCE["name"], "Patient")], now)
    spec = client.get("/openapi.json").json()

    def check(response: httpx.Response, status: int) -> Any:
        assert response.status_code == status, response.text
        return assert_as_declared(spec, response)

    check(client.get("/healthz"), 200)
    assert check(client.get("/status", headers=API), 200)["people"] == 6
    check(client.get("/status"), 401)
    people = check(client.get("/people", headers=API, params={"limit": 2}), 200)
    check(client.get("/people", headers=API, params={"identifier": "no-bar"}), 400)
    problem = check(client.get("/people", headers=API, params={"limit": 0}), 400)
    assert problem["invalid_params"][0]["name"] == "limit"
    check(client.get("/people", headers=API, params={"cursor": "forged!"}), 400)
    check(client.get("/people", headers={"Authorization": "Bearer wrong"}), 401)
    person = people["items"][0]["id"]
    check(client.get(f"/people/{person}", headers=API), 200)
    check(client.get("/people/nobody", headers=API), 404)
    journey = check(client.get(f"/people/{person}/journey", headers=API), 200)
    assert journey["items"]
    check(client.get(f"/people/{person}/journey", headers=API, params={"job": "cure"}), 400)
    check(client.get(f"/people/{person}/journey", headers=API, params={"from": "soon"}), 400)
    check(client.get("/people/nobody/journey", headers=API), 404)
    sources = check(client.get("/sources", headers=API), 200)
    assert sources["items"][0]["resource_types"][0]["last_counts"] == {"new": 3, "pages": 1}
    assert sources["items"][0]["worker_units"][0]["unit"] == "Patient"
    check(client.post("/sources/elsewhere/sync", headers=API), 404)
    check(client.post(f"/sources/{SOURCE['name']}/sync", headers=API, params={"full": "x"}), 400)


def test_a_started_sync_and_a_second_start_match_the_document(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()

    async def held_sync(*_args: Any, **_kwargs: Any) -> None:
        while not release.is_set():
            await asyncio.sleep(0.01)

    monkeypatch.setattr("integration.api.routes.sources.sync_source", held_sync)
    spec = client.get("/openapi.json").json()
    url = f"/sources/{SOURCE['name']}/sync"
    started = client.post(url, headers=API)
    assert started.status_code == 202
    assert assert_as_declared(spec, started)["status_url"] == "/sources"
    again = client.post(url, headers=API)
    assert again.status_code == 409
    assert_as_declared(spec, again)
    listed = client.get("/sources", headers=API)
    assert assert_as_declared(spec, listed)["items"][0]["running_since"]
    release.set()
    for _ in range(500):
        if not client.app.state.running_syncs:  # type: ignore[attr-defined]
            break
        time.sleep(0.01)


def test_fhir_answers_match_the_document(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()

    def check(response: httpx.Response, status: int) -> Any:
        assert response.status_code == status, response.text
        return assert_as_declared(spec, response)

    patient = {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:1.2.3", "value": "MRN-9"}],
        "birthDate": "1970-02-03",
    }
    check(client.get("/fhir/metadata"), 200)
    created = check(client.post("/fhir/Patient", headers=PUSH, json=patient), 201)
    check(client.post("/fhir/Patient", headers=PUSH, json=patient), 200)
    as_outcome = {**PUSH, "Prefer": "return=OperationOutcome"}
    outcome = check(
        client.post("/fhir/Patient", headers=as_outcome, json={**patient, "gender": "other"}), 201
    )
    assert outcome["resourceType"] == "OperationOutcome"
    check(client.post("/fhir/Patient", json=patient), 401)
    check(client.post("/fhir/Nonsense", headers=PUSH, json=patient), 404)
    check(client.post("/fhir/Encounter", headers=PUSH, json=patient), 400)
    check(client.post("/fhir/Patient", headers=PUSH, content=b"{not json"), 400)
    check(
        client.post("/fhir/Patient", headers={**PUSH, "Content-Type": "text/plain"}, json=patient),
        415,
    )
    check(client.post("/fhir/Patient", headers=PUSH, json={**patient, "x": "y" * 70_000}), 413)
    check(client.post("/fhir/Patient", headers=PUSH, json={**patient, "birthDate": "1970-13"}), 422)
    put = {**patient, "id": "p-1"}
    check(client.put("/fhir/Patient/p-1", headers=PUSH, json=put), 201)
    updated = check(
        client.put("/fhir/Patient/p-1", headers=PUSH, json={**put, "gender": "male"}), 200
    )
    stale = {**PUSH, "If-Match": 'W/"0"'}
    check(client.put("/fhir/Patient/p-1", headers=stale, json={**put, "gender": "female"}), 412)
    check(client.put("/fhir/Patient/p-2", headers=PUSH, json=put), 400)
    check(client.get("/fhir/Patient/p-1", headers=PUSH), 200)
    check(client.get("/fhir/Patient/nobody", headers=PUSH), 404)
    version = updated["meta"]["versionId"]
    check(client.get(f"/fhir/Patient/p-1/_history/{version}", headers=PUSH), 200)
    check(client.get("/fhir/Patient/p-1/_history/999999", headers=PUSH), 404)
    found = check(
        client.get("/fhir/Patient", headers=PUSH, params={"identifier": "urn:oid:1.2.3|MRN-9"}),
        200,
    )
    assert created["id"] in [e["resource"]["id"] for e in found["entry"]]
    check(client.get("/fhir/Patient", headers=PUSH), 400)
    check(client.get("/fhir/Patient", headers=PUSH, params={"name": "x"}), 400)
    transaction = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": patient, "request": {"method": "POST", "url": "Patient"}}],
    }
    check(client.post("/fhir", headers=PUSH, json=transaction), 200)
    batch = {
        **transaction,
        "type": "batch",
        "entry": [*transaction["entry"], {"request": {"method": "DELETE", "url": "Patient/1"}}],
    }
    reply = check(client.post("/fhir", headers=PUSH, json=batch), 200)
    assert reply["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    check(client.post("/fhir", headers=PUSH, json=patient), 400)
    invalid = {**patient, "birthDate": "1970-13"}
    bad_entry = {"resource": invalid, "request": {"method": "POST", "url": "Patient"}}
    check(client.post("/fhir", headers=PUSH, json={**transaction, "entry": [bad_entry]}), 422)


def test_a_nul_character_is_refused_before_it_reaches_the_store(client: TestClient) -> None:
    """PostgreSQL text cannot hold U+0000: a parameter or pushed string with one was a 500,
    and a pushed Patient with one was stored and then stopped every derivation after it."""
    spec = client.get("/openapi.json").json()

    def check(response: httpx.Response, status: int) -> Any:
        assert response.status_code == status, response.text
        return assert_as_declared(spec, response)

    nul_cursor = base64.urlsafe_b64encode(b'["a\\u0000"]').decode().rstrip("=")
    check(client.get("/people/a%00b", headers=API), 400)
    check(client.get("/people/a%00b/journey", headers=API), 400)
    check(client.get("/people", headers=API, params={"identifier": "urn:x|a\x00"}), 400)
    check(client.get("/people", headers=API, params={"cursor": nul_cursor}), 400)
    check(client.get("/fhir/Patient/a%00b", headers=PUSH), 400)
    check(client.get("/fhir/Patient/a%00b/_history/1", headers=PUSH), 400)
    check(client.get("/fhir/Patient", headers=PUSH, params={"identifier": "urn:x|\x00"}), 400)
    check(client.get("/fhir/Patient", headers=PUSH, params={"_id": "\x00"}), 400)
    named = {"resourceType": "Patient", "name": [{"family": "Nul\x00l"}]}
    outcome = check(client.post("/fhir/Patient", headers=PUSH, json=named), 400)
    assert outcome["issue"][0]["expression"] == ["Patient.name[0].family"]
    referring = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"code": "AMB"},
        "subject": {"reference": "Patient/\x00"},
    }
    check(client.post("/fhir/Encounter", headers=PUSH, json=referring), 400)
    entry = {
        "resource": {"resourceType": "Patient"},
        "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=x|\x00"},
    }
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}
    check(client.post("/fhir", headers=PUSH, json=bundle), 400)
    # Nothing with a NUL was stored, so what comes next is derived as ever.
    check(
        client.put(
            "/fhir/Patient/after", headers=PUSH, json={"resourceType": "Patient", "id": "after"}
        ),
        201,
    )
    people = check(client.get("/people", headers=API), 200)
    assert [s["patient_id"] for p in people["items"] for s in p["sources"]] == ["after"]


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/fhir/Patient/p-1", "GET, PUT"),
        ("PATCH", "/fhir/Patient", "GET, POST"),
        ("GET", "/fhir", "POST"),
        ("DELETE", "/people/x", "GET"),
        ("PUT", "/healthz", "GET"),
    ],
)
def test_a_method_not_allowed_is_405_with_every_allowed_method(
    client: TestClient, method: str, path: str, allow: str
) -> None:
    response = client.request(method, path, headers=PUSH if "fhir" in path else API)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    expected = "application/fhir+json" if path.startswith("/fhir") else "application/problem+json"
    assert response.headers["content-type"] == expected


# ---- an unexpected exception ----


def unexpected_failure_app(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> FastAPI:
    from integration.api.request_log import install_request_log

    app = create_app(contract_settings(engine, monkeypatch), engine)
    install_request_log(app)  # as `journey serve` does: its line must say 500 too
    caplog.set_level(logging.INFO, logger="journey.api")
    return app


def assert_logged_once_without_values(
    caplog: pytest.LogCaptureFixture, correlation_id: str, secret: str, request_line: str
) -> None:
    failures = [r for r in caplog.records if correlation_id in r.getMessage()]
    assert len(failures) == 1
    logged = failures[0].getMessage()
    assert "builtins.RuntimeError" in logged
    assert "in boom" in logged  # the traceback, down to the frame that raised
    assert request_line in [r.getMessage().rsplit(" ", 1)[0] for r in caplog.records]
    assert secret not in caplog.text


def test_an_unexpected_exception_is_a_500_problem_with_a_correlation_id(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(_conn: Any, _limit: int, _after: Any, identifier: Any, *_: Any) -> None:
        raise RuntimeError(f"no people with {identifier}")

    monkeypatch.setattr("integration.store.queries.list_people", boom)
    app = unexpected_failure_app(engine, monkeypatch, caplog)
    with TestClient(app) as client:
        spec = client.get("/openapi.json").json()
        response = client.get("/people", headers=API, params={"identifier": "urn:x|Zelda"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    body = assert_as_declared(spec, response)
    correlation_id = body["correlation_id"]
    assert response.headers["x-request-id"] == correlation_id
    assert correlation_id in body["detail"]
    assert_logged_once_without_values(caplog, correlation_id, "Zelda", "GET /people 500")


def test_an_unexpected_exception_on_fhir_is_a_500_operation_outcome(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(_self: Any, _source: str, write: Any) -> None:
        raise RuntimeError(f"cannot store {write.resource}")

    monkeypatch.setattr("integration.push.service.PushService.write_one", boom)
    app = unexpected_failure_app(engine, monkeypatch, caplog)
    patient = {"resourceType": "Patient", "name": [{"family": "Quartermaine"}]}
    with TestClient(app) as client:
        spec = client.get("/openapi.json").json()
        response = client.post("/fhir/Patient", headers=PUSH, json=patient)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/fhir+json"
    outcome = assert_as_declared(spec, response)
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "exception"
    correlation_id = outcome["id"]
    assert response.headers["x-request-id"] == correlation_id
    assert correlation_id in outcome["issue"][0]["diagnostics"]
    assert_logged_once_without_values(
        caplog, correlation_id, "Quartermaine", "POST /fhir/Patient 500"
    )


# ---- schemathesis over the whole API ----

# Bounded: a few hundred requests over every operation, the same ones every run.
# Its pytest plugin does not run on pytest 9.2 (it reads Node._nodeid), so the test
# drives its engine, as its command line does, and fails on what the engine reports.
SCHEMATHESIS = {
    "generation": {"max-examples": 12, "deterministic": True, "database": "none"},
    "phases": {"stateful": {"enabled": False}},
    "checks": {
        "enabled": False,
        **{
            name: {"enabled": True}
            for name in (
                "not_a_server_error",
                "status_code_conformance",
                "content_type_conformance",
                "response_schema_conformance",
                "unsupported_method",  # a 405 for a method the path lacks, with Allow
            )
        },
    },
    # Both security schemes, so that the paths behind the keys are exercised too.
    "auth": {"openapi": {"ApiKey": {"bearer": API_KEY}, "PushKey": {"bearer": PUSH_KEY}}},
}


# Hypothesis warns when the repr of a generated example (a long path parameter) is slow
# to build: about its own reporting, not about the API, and it came now and then.
@pytest.mark.filterwarnings(
    "ignore:Generating overly large repr:hypothesis.errors.HypothesisWarning"
)
def test_schemathesis_finds_no_server_error_and_no_answer_off_the_document(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = open_store(store_url)
    app = create_app(contract_settings(engine, monkeypatch), engine)
    config = SchemathesisConfig.from_dict(SCHEMATHESIS)
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
        # A live stream answers for as long as the client listens: it has tests of its
        # own against a real server (tests/integration/test_feed_stream.py).
        schema = schema.exclude(path=STREAMS)
        events = list(schemathesis.engine.from_schema(schema).execute())
        for _ in range(1000):  # a sync it started fails fast (nothing listens there)
            if not app.state.running_syncs:
                break
            time.sleep(0.01)
    finally:
        shutdown_lifespans()  # else the app runs until the interpreter exits
        engine.dispose()
    problems: list[str] = []
    requests = 0
    operations: set[str] = set()
    for event in events:
        if isinstance(event, NonFatalError | FatalError):
            problems.append(f"schemathesis could not test: {event}")
        if not isinstance(event, ScenarioFinished):
            continue
        requests += len(event.recorder.interactions)
        if event.recorder.interactions and event.label:
            operations.add(event.label)
        for checks in event.recorder.checks.values():
            for check in checks:
                if check.failure_info is not None:
                    failure = check.failure_info.failure
                    problems.append(f"{failure.operation}: {failure.title}\n{failure.message}")
    assert not problems, "\n\n".join(sorted(set(problems)))
    documented = {
        f"{method.upper()} {path}"
        for path, item in app.openapi()["paths"].items()
        for method in item
        if path not in STREAMS
    }
    assert operations == documented  # every operation was reached
    assert 100 <= requests <= 3000, requests  # bounded: about 50 per operation


def test_a_store_that_is_away_is_a_503_to_retry_not_a_500(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from sqlalchemy.exc import OperationalError

    def locked(_self: Any, _source: str, write: Any) -> None:
        raise OperationalError("UPDATE store_locks ...", {}, sqlite3.OperationalError("locked"))

    monkeypatch.setattr("integration.push.service.PushService.write_one", locked)
    app = unexpected_failure_app(engine, monkeypatch, caplog)
    with TestClient(app) as client:
        spec = client.get("/openapi.json").json()
        response = client.post("/fhir/Patient", headers=PUSH, json={"resourceType": "Patient"})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    outcome = assert_as_declared(spec, response)
    assert outcome["issue"][0]["code"] == "transient"


def test_a_database_error_in_a_push_logs_where_but_no_value_sent(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A real one: the store refuses the raw row. PostgreSQL's message quotes the row."""
    refuse_rows(engine, "raw_resources", "content", "Quartermaine")
    app = unexpected_failure_app(engine, monkeypatch, caplog)
    caplog.set_level(logging.DEBUG)
    patient = {
        "resourceType": "Patient",
        "name": [{"family": "Quartermaine"}],
        "birthDate": "1951-04-30",
        "identifier": [{"system": "urn:ssn", "value": "987-65-4320"}],
    }
    with TestClient(app) as client:
        response = client.put("/fhir/Patient/q1", headers=PUSH, json={**patient, "id": "q1"})
        after = client.put(
            "/fhir/Patient/q2", headers=PUSH, json={"resourceType": "Patient", "id": "q2"}
        )
    assert response.status_code == 500
    assert after.status_code == 201  # the next push is unaffected
    for value in ("Quartermaine", "1951-04-30", "987-65-4320"):
        assert value not in caplog.text
        assert value not in response.text
