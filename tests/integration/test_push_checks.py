"""What /fhir refuses before storing anything: bodies that are not JSON or not the type
the URL names, overlapping entries in a Bundle, resources over the size or nesting limit,
ids outside FHIR's rule and NUL characters. In-process
(TestClient) on both backends: the PostgreSQL store is where a NUL used to answer 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from integration.api.app import create_app
from integration.config import Settings
from integration.store.schema import raw_resources

PUSH_KEY = "push-key"
FHIR_JSON = "application/fhir+json"
RESOURCE_LIMIT = 4096
DEPTH_LIMIT = 64


@pytest.fixture
def fhir(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("CHECKS_PUSH_KEY", PUSH_KEY)
    settings = Settings(
        database_url=engine.url.render_as_string(hide_password=False),
        push_clients=[{"source": "clinic", "key_env": "CHECKS_PUSH_KEY"}],
        max_resource_bytes=RESOURCE_LIMIT,
        max_push_bytes=1 << 20,
        max_resource_depth=DEPTH_LIMIT,
    )
    headers = {"Authorization": f"Bearer {PUSH_KEY}", "Content-Type": FHIR_JSON}
    with TestClient(
        create_app(settings, engine), base_url="http://testserver/fhir", headers=headers
    ) as client:
        yield client


def stored(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(raw_resources)).scalar_one())


def issue_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    first: dict[str, Any] = body["issue"][0]
    return first


def patient(pid: str | None = None, **extra: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Patient", "gender": "female", **extra}
    if pid:
        resource["id"] = pid
    return resource


def visit(subject: str) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER"},
        "subject": {"reference": subject},
    }


def bundle(kind: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def post(resource: dict[str, Any], full_url: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
    }
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def put(resource: dict[str, Any]) -> dict[str, Any]:
    url = f"{resource['resourceType']}/{resource['id']}"
    return {"resource": resource, "request": {"method": "PUT", "url": url}}


def nested_extensions(depth: int) -> dict[str, Any]:
    """A valid Patient whose extensions nest `depth` deep (two JSON levels each)."""
    extension: dict[str, Any] = {"url": "http://example.org/leaf", "valueString": "x"}
    for _ in range(depth - 1):
        extension = {"url": "http://example.org/node", "extension": [extension]}
    return {"resourceType": "Patient", "id": "deep", "extension": [extension]}


# ---- bodies that are not what the URL says ----


@pytest.mark.parametrize(
    ("method", "path", "body", "content_type", "status", "says"),
    [
        ("POST", "/Encounter", b'{"resourceType": "Enc', FHIR_JSON, 400, "not valid JSON"),
        ("POST", "/Encounter", b"{}", "text/plain", 415, "Content-Type"),
        ("POST", "/Encounter", b'{"resourceType": "Patient"}', FHIR_JSON, 400, "resourceType"),
        ("PUT", "/Patient/a1", b'{"resourceType": "Patient", "id": "a2"}', FHIR_JSON, 400, "id"),
        ("POST", "/Spaceship", b'{"resourceType": "Spaceship"}', FHIR_JSON, 404, "not FHIR R4"),
        (
            "POST",
            "/Encounter",
            b'{"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"},'
            b' "period": {"start": "2026-13-01"}}',
            FHIR_JSON,
            422,
            "Encounter.period.start",
        ),
    ],
    ids=["malformed-json", "wrong-content-type", "wrong-type", "id-mismatch", "unknown-type", "r4"],
)
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # refused before the store
def test_bad_requests_get_an_operation_outcome(
    fhir: TestClient,
    method: str,
    path: str,
    body: bytes,
    content_type: str,
    status: int,
    says: str,
) -> None:
    response = fhir.request(method, path, content=body, headers={"Content-Type": content_type})
    assert says in str(issue_of(response, status))


# ---- overlapping entries ----


def test_a_transaction_with_a_duplicate_full_url_is_refused_naming_both_entries(
    fhir: TestClient, engine: Engine
) -> None:
    response = fhir.post(
        "",
        json=bundle(
            "transaction",
            post(patient(gender="male"), "urn:uuid:11111111-1111-1111-1111-111111111111"),
            post(visit("urn:uuid:11111111-1111-1111-1111-111111111111")),
            post(patient(gender="female"), "urn:uuid:11111111-1111-1111-1111-111111111111"),
        ),
    )
    issue = issue_of(response, 400)
    assert "Bundle.entry[0]" in issue["diagnostics"]
    assert "Bundle.entry[2]" in issue["diagnostics"]
    assert "fullUrl" in issue["diagnostics"]
    assert stored(engine) == 0  # all or nothing


def test_a_transaction_putting_one_resource_twice_is_refused_naming_both_entries(
    fhir: TestClient, engine: Engine
) -> None:
    response = fhir.post(
        "",
        json=bundle(
            "transaction",
            put(patient("twice", gender="male")),
            put(patient("other")),
            put(patient("twice", gender="female")),
        ),
    )
    issue = issue_of(response, 400)
    assert "Bundle.entry[0]" in issue["diagnostics"]
    assert "Bundle.entry[2]" in issue["diagnostics"]
    assert "Patient/twice" in issue["diagnostics"]
    assert stored(engine) == 0


def test_a_batch_fails_the_overlapping_entries_and_stores_the_others(
    fhir: TestClient, engine: Engine
) -> None:
    response = fhir.post(
        "",
        json=bundle(
            "batch",
            put(patient("twice", gender="male")),
            put(patient("alone")),
            put(patient("twice", gender="female")),
            post(patient(gender="male"), "urn:uuid:22222222-2222-2222-2222-222222222222"),
            post(patient(gender="female"), "urn:uuid:22222222-2222-2222-2222-222222222222"),
        ),
    )
    assert response.status_code == 200, response.text
    entries = response.json()["entry"]
    assert [e["response"]["status"][:3] for e in entries] == ["400", "201", "400", "400", "400"]
    said = [str(e["response"].get("outcome", "")) for e in entries]
    assert "Bundle.entry[0]" in said[2]
    assert "Bundle.entry[2]" in said[0]
    assert "Bundle.entry[3]" in said[4]
    assert "Bundle.entry[4]" in said[3]
    assert stored(engine) == 1
    assert fhir.get("/Patient/twice").status_code == 404


# ---- size ----


def test_a_resource_over_the_resource_limit_is_413_though_the_body_limit_is_higher(
    fhir: TestClient, engine: Engine
) -> None:
    big = patient("big", name=[{"family": "x" * (RESOURCE_LIMIT + 100)}])
    for response in (fhir.put("/Patient/big", json=big), fhir.post("/Patient", json=big)):
        issue = issue_of(response, 413)
        assert str(RESOURCE_LIMIT) in issue["diagnostics"]
        assert "JOURNEY_MAX_RESOURCE_BYTES" in issue["diagnostics"]
    in_transaction = fhir.post("", json=bundle("transaction", put(patient("small")), put(big)))
    issue = issue_of(in_transaction, 413)
    assert "Bundle.entry[1]" in issue["diagnostics"]
    in_batch = fhir.post("", json=bundle("batch", put(patient("small")), put(big)))
    assert [e["response"]["status"][:3] for e in in_batch.json()["entry"]] == ["201", "413"]
    assert stored(engine) == 1


# ---- ids and NUL ----


@pytest.mark.parametrize("bad_id", ["a%00b", "has%20space", "x" * 65, "semi;colon"])
def test_an_id_outside_the_fhir_id_rule_is_400_naming_the_element(
    fhir: TestClient, engine: Engine, bad_id: str
) -> None:
    resource_id = bad_id.replace("%00", "\x00").replace("%20", " ")
    response = fhir.put(f"/Patient/{bad_id}", content=orjson.dumps(patient(resource_id)))
    issue = issue_of(response, 400)
    assert issue["expression"] == ["Patient.id"]
    assert "\x00" not in issue["diagnostics"]
    assert stored(engine) == 0


@pytest.mark.parametrize(
    ("resource", "path"),
    [
        (patient(name=[{"family": "Nu\x00ll"}]), "Patient.name[0].family"),
        (patient(identifier=[{"system": "urn:x", "value": "M\x00"}]), "Patient.identifier[0]"),
        (visit("Patient/p\x001"), "Encounter.subject.reference"),
        (patient(meta={"versionId": "1\x00"}), "Patient.meta.versionId"),
        (patient(**{"gen\x00der": "female"}), "Patient"),
    ],
    ids=["name", "identifier", "reference", "version-id", "element-name"],
)
def test_a_nul_character_anywhere_in_a_pushed_resource_is_400_not_500(
    fhir: TestClient, engine: Engine, resource: dict[str, Any], path: str
) -> None:
    for response in (
        fhir.post(f"/{resource['resourceType']}", content=orjson.dumps(resource)),
        fhir.post("", content=orjson.dumps(bundle("transaction", post(resource)))),
    ):
        issue = issue_of(response, 400)
        assert issue["expression"][0].startswith(path), issue
        assert "NUL" in issue["diagnostics"]
        assert "\x00" not in response.text
    assert stored(engine) == 0


def test_reads_and_searches_with_a_nul_are_answered_not_500(fhir: TestClient) -> None:
    assert fhir.get("/Patient/a%00b").status_code == 400
    assert fhir.get("/Patient/p1/_history/1%00").status_code == 400
    assert fhir.get("/Patient?identifier=urn:x|M%00").status_code == 400
    assert fhir.get("/Patient?_id=a%00").status_code == 400
    conditional = fhir.post("/Patient", json=patient(), headers={"If-None-Exist": "_id=a%00"})
    assert conditional.status_code == 400


# ---- nesting depth ----


def test_a_resource_nested_150_deep_is_refused_naming_the_limit_and_the_entry(
    fhir: TestClient, engine: Engine
) -> None:
    deep = json.dumps(nested_extensions(150))  # deeper than orjson itself writes
    response = fhir.put("/Patient/deep", content=deep)
    issue = issue_of(response, 400)
    assert str(DEPTH_LIMIT) in issue["diagnostics"]
    assert "JOURNEY_MAX_RESOURCE_DEPTH" in issue["diagnostics"]
    assert issue["expression"][0].startswith("Patient.extension[0].extension[0]")

    transaction = json.dumps(
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [put(patient("fine")), put(nested_extensions(150))],
        }
    )
    issue = issue_of(fhir.post("", content=transaction), 400)
    assert "Bundle.entry[1]" in issue["diagnostics"]
    assert str(DEPTH_LIMIT) in issue["diagnostics"]
    assert stored(engine) == 0

    # 31 extensions reach 63 levels (the Patient, then a list and an object each):
    # accepted, stored and read back whole; 32 reach 65 and are not.
    at_limit = nested_extensions(31)
    assert fhir.put("/Patient/deep", json=at_limit).status_code == 201
    assert fhir.get("/Patient/deep").json()["extension"] == at_limit["extension"]
    issue_of(fhir.put("/Patient/deep", json=nested_extensions(32)), 400)


def test_a_higher_depth_setting_holds_for_validation_too(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHECKS_PUSH_KEY", PUSH_KEY)
    settings = Settings(
        database_url=engine.url.render_as_string(hide_password=False),
        push_clients=[{"source": "clinic", "key_env": "CHECKS_PUSH_KEY"}],
        max_resource_depth=100,
    )
    headers = {"Authorization": f"Bearer {PUSH_KEY}", "Content-Type": FHIR_JSON}
    with TestClient(create_app(settings, engine), headers=headers) as client:
        # 40 extensions reach 81 levels: past the default, within this setting.
        response = client.put("/fhir/Patient/deep", json=nested_extensions(40))
    assert response.status_code == 201, response.text
