"""Providers push to /fhir: `journey serve` on loopback, pushed to by real FHIR clients
(fhirpy, fhirclient, sekmet-fhir as a pushing EHR) and by plain httpx for the errors."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import throwaway_store_url
from tests.servers import free_port, wait_until_up

JOURNEY = str(Path(sys.executable).parent / "journey")
SEKMET = str(Path(sys.executable).parent / "sekmet")
PUSH_KEY = "riverside-push-key"
READ_KEY = "reader-key"
FHIR_JSON = "application/fhir+json"
SNOMED = "http://snomed.info/sct"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


@dataclass(frozen=True)
class JourneyServer:
    url: str

    @property
    def fhir(self) -> str:
        return f"{self.url}/fhir"

    def client(self, key: str = PUSH_KEY, content_type: str = FHIR_JSON) -> httpx.Client:
        return httpx.Client(
            base_url=self.fhir,
            headers={"Authorization": f"Bearer {key}", "Content-Type": content_type},
            timeout=30,
        )

    def journey_of_patient(self, patient_id: str) -> list[dict[str, Any]]:
        """The journey records of the person a pushed Patient belongs to, via the API."""
        with httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {READ_KEY}"}, timeout=30
        ) as api:
            people = api.get("/people", params={"limit": 500}).json()["items"]
            person = next(
                p
                for p in people
                if any(
                    s["patient_id"] == patient_id and s["source"] == "riverside"
                    for s in p["sources"]
                )
            )
            journey = api.get(f"/people/{person['id']}/journey").json()
        records: list[dict[str, Any]] = journey["items"]
        return records


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[JourneyServer]:
    """One `journey serve` per backend for the whole module (starting one takes seconds),
    one push client configured. Tests share its store, so each uses its own ids and MRNs."""
    directory = tmp_path_factory.mktemp("push-server")
    config = directory / "journey.toml"
    config.write_text(
        '[[push_clients]]\nsource = "riverside"\nkey_env = "RIVERSIDE_PUSH_KEY"\n',
        encoding="utf-8",
    )
    port = free_port()
    with throwaway_store_url(request.param, request, directory) as store_url:
        env = {
            **os.environ,
            "JOURNEY_CONFIG": str(config),
            "JOURNEY_DATABASE_URL": store_url,
            "JOURNEY_API_KEYS": READ_KEY,
            "JOURNEY_MAX_PUSH_BYTES": str(256 * 1024),
            "RIVERSIDE_PUSH_KEY": PUSH_KEY,
        }
        process = subprocess.Popen(
            [JOURNEY, "serve", "--port", str(port)],
            env=env,
            cwd=directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(f"{url}/fhir/metadata", process, "journey serve")
            yield JourneyServer(url)
        finally:
            process.terminate()
            process.wait(timeout=20)


def patient(pid: str | None = None, mrn: str | None = None) -> dict[str, Any]:
    """A Patient with an MRN of its own (the module's tests share one store)."""
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:1.2.3", "value": mrn or f"MRN-{pid}"}],
        "gender": "female",
        "birthDate": "1970-02-03",
    }
    if pid:
        resource["id"] = pid
    return resource


def emergency_visit(subject: str, start: str = "2026-03-01T10:00:00Z") -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": ACT_CODE, "code": "EMER"},
        "subject": {"reference": subject},
        "period": {"start": start, "end": "2026-03-01T14:00:00Z"},
        # Chest pain: a symptom to work up (an emergency class alone places no job).
        "reasonCode": [
            {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "R07.9"}]}
        ],
    }


def us_core_transaction(mrn: str = "MRN-TX") -> dict[str, Any]:
    """An EHR-style transaction: a Patient, a Condition, an Encounter and an Observation,
    tied together with urn:uuid references, the Patient created only if not there yet."""
    pat, cond = "urn:uuid:11111111-1111-4111-8111-111111111111", "urn:uuid:2222-cond"
    encounter = emergency_visit(pat)
    encounter["reasonReference"] = [{"reference": cond}]
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": pat,
                "resource": patient(mrn=mrn),
                "request": {
                    "method": "POST",
                    "url": "Patient",
                    "ifNoneExist": f"identifier=urn:oid:1.2.3|{mrn}",
                },
            },
            {
                "fullUrl": cond,
                "resource": {
                    "resourceType": "Condition",
                    "subject": {"reference": pat},
                    "code": {"coding": [{"system": SNOMED, "code": "29857009"}]},
                },
                "request": {"method": "POST", "url": "Condition"},
            },
            {"resource": encounter, "request": {"method": "POST", "url": "Encounter"}},
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                    "subject": {"reference": pat},
                    "valueQuantity": {"value": 88, "unit": "/min"},
                },
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }


def outcome_of(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith(FHIR_JSON)
    body: dict[str, Any] = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    return body


# ---- the conformant happy paths ----


def test_capability_statement_tells_what_is_supported(server: JourneyServer) -> None:
    statement = httpx.get(f"{server.fhir}/metadata").json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    rest = statement["rest"][0]
    assert {i["code"] for i in rest["interaction"]} == {"transaction", "batch"}
    by_type = {r["type"]: r for r in rest["resource"]}
    assert {"Patient", "Encounter", "QuestionnaireResponse", "Condition"} <= set(by_type)
    assert {i["code"] for i in by_type["Encounter"]["interaction"]} >= {
        "read",
        "vread",
        "create",
        "update",
    }
    assert by_type["Condition"]["documentation"].startswith("validated and kept raw")
    assert {"delete", "history-instance"} <= {i["code"] for i in by_type["Patient"]["interaction"]}
    assert by_type["Patient"]["conditionalDelete"] == "single"
    # ...and does not claim what is not there.
    assert "patch" not in {i["code"] for i in by_type["Patient"]["interaction"]}
    assert by_type["Patient"]["conditionalUpdate"] is False


def test_a_transaction_lands_in_the_journey_at_once_and_a_repush_changes_nothing(
    server: JourneyServer,
) -> None:
    with server.client() as fhir:
        first = fhir.post("", json=us_core_transaction())
        assert first.status_code == 200, first.text
        reply = first.json()
        assert reply["type"] == "transaction-response"
        statuses = [e["response"]["status"] for e in reply["entry"]]
        assert statuses == ["201 Created"] * 4
        locations = [e["response"]["location"] for e in reply["entry"]]
        patient_id = locations[0].split("/")[1]
        encounter = fhir.get("/" + "/".join(locations[2].split("/")[:2])).json()
        # urn:uuid references now point at the ids the server gave.
        assert encounter["subject"]["reference"] == f"Patient/{patient_id}"
        assert encounter["reasonReference"][0]["reference"].startswith("Condition/")
        assert all(e["response"]["etag"].startswith('W/"') for e in reply["entry"])

        records = server.journey_of_patient(patient_id)
        assert [r["job"] for r in records] == [
            "diagnose"
        ]  # an emergency visit: tell me what's wrong
        assert records[0]["source"]["source"] == "riverside"
        # The pushed Condition, referenced by the Encounter, is read as its concern.
        assert f"{SNOMED}|29857009" in records[0]["concern_codes"]

        again = fhir.post("", json=us_core_transaction()).json()
    assert [e["response"]["status"] for e in again["entry"]] == ["200 OK"] * 4
    assert [e["response"]["location"] for e in again["entry"]] == locations
    assert all(
        "nothing changed" in e["response"]["outcome"]["issue"][0]["diagnostics"]
        for e in again["entry"]
    )
    assert len(server.journey_of_patient(patient_id)) == 1


def test_put_creates_then_updates_with_versions_and_if_match(server: JourneyServer) -> None:
    with server.client() as fhir:
        created = fhir.put("/Patient/pat-7", json=patient("pat-7"))
        assert created.status_code == 201
        etag = created.headers["ETag"]
        assert created.headers["Location"].endswith(f"/fhir/Patient/pat-7/_history/{etag[3:-1]}")
        assert "GMT" in created.headers["Last-Modified"]

        changed = patient("pat-7") | {"gender": "other"}
        stale = fhir.put("/Patient/pat-7", json=changed, headers={"If-Match": 'W/"999999"'})
        assert stale.status_code == 412
        assert "If-Match" in outcome_of(stale)["issue"][0]["diagnostics"]

        updated = fhir.put("/Patient/pat-7", json=changed, headers={"If-Match": etag})
        assert updated.status_code == 200
        assert updated.headers["ETag"] != etag
        assert fhir.get("/Patient/pat-7").json()["gender"] == "other"
        old = fhir.get(f"/Patient/pat-7/_history/{etag[3:-1]}")
        assert old.status_code == 200
        assert old.json()["gender"] == "female"
        assert old.json()["meta"]["versionId"] == etag[3:-1]


def test_conditional_create_finds_the_patient_already_there(server: JourneyServer) -> None:
    with server.client() as fhir:
        first = fhir.post(
            "/Patient",
            json=patient(mrn="MRN-C"),
            headers={"If-None-Exist": "identifier=urn:oid:1.2.3|MRN-C"},
        )
        assert first.status_code == 201
        second = fhir.post(
            "/Patient",
            json=patient(mrn="MRN-C") | {"gender": "male"},
            headers={"If-None-Exist": "identifier=urn:oid:1.2.3|MRN-C"},
        )
        assert second.status_code == 200
        assert second.headers["Location"] == first.headers["Location"]
        found = fhir.get("/Patient", params={"identifier": "urn:oid:1.2.3|MRN-C"}).json()
    assert found["total"] == 1


def test_a_batch_keeps_good_entries_and_answers_each_bad_one(server: JourneyServer) -> None:
    bad = emergency_visit("Patient/b1") | {"period": {"start": "2026-02-30T10:00:00Z"}}
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"resource": patient("b1"), "request": {"method": "PUT", "url": "Patient/b1"}},
            {"resource": bad, "request": {"method": "POST", "url": "Encounter"}},
            {"resource": patient("b2"), "request": {"method": "PATCH", "url": "Patient/b2"}},
        ],
    }
    with server.client() as fhir:
        reply = fhir.post("", json=batch).json()
        statuses = [e["response"]["status"] for e in reply["entry"]]
        assert statuses == ["201 Created", "422", "400"]
        issue = reply["entry"][1]["response"]["outcome"]["issue"][0]
        assert issue["expression"] == ["Encounter.period.start"]
        assert "Bundle.entry[1]" in issue["diagnostics"]
        assert fhir.get("/Patient/b1").status_code == 200


def test_an_encounter_for_a_patient_not_yet_pushed_is_kept_with_a_warning(
    server: JourneyServer,
) -> None:
    with server.client() as fhir:
        early = fhir.post(
            "/Encounter",
            json=emergency_visit("Patient/late-1"),
            headers={"Prefer": "return=OperationOutcome"},
        )
        assert early.status_code == 201
        issue = outcome_of(early)["issue"][0]
        assert issue["severity"] == "warning"
        assert "Patient/late-1" in issue["diagnostics"]
        # When the Patient arrives, the Encounter joins its journey.
        assert fhir.put("/Patient/late-1", json=patient("late-1", "MRN-L")).status_code == 201
    assert [r["job"] for r in server.journey_of_patient("late-1")] == ["diagnose"]


# ---- bad input: an OperationOutcome naming what and where ----


def test_oversize_bodies_are_refused_without_reading_them_whole(server: JourneyServer) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"resourceType": "Patient", "text": "'
        for _ in range(10_000):  # 640 MB if it were all read; the limit is 256 kB
            yield b"x" * 65536

    with server.client() as fhir:
        response = fhir.post("/Patient", content=chunks())
    assert response.status_code == 413
    assert "limit" in outcome_of(response)["issue"][0]["diagnostics"]


def test_credentials_are_required_and_checked(server: JourneyServer) -> None:
    with server.client(key="not-a-key") as fhir:
        wrong = fhir.put("/Patient/x1", json=patient("x1"))
    missing = httpx.get(f"{server.fhir}/Patient/x1")
    for response in (wrong, missing):
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        outcome_of(response)
    # The read API's key is not a push key.
    with server.client(key=READ_KEY) as fhir:
        assert fhir.put("/Patient/x1", json=patient("x1")).status_code == 401


def test_a_transaction_with_one_bad_entry_stores_nothing(server: JourneyServer) -> None:
    bundle = us_core_transaction(mrn="MRN-TX-BAD")
    bundle["entry"][2]["resource"]["status"] = "done-and-dusted"
    with server.client() as fhir:
        response = fhir.post("", json=bundle)
        assert response.status_code == 422
        issue = outcome_of(response)["issue"][0]
        assert "Bundle.entry[2]" in issue["diagnostics"]
        assert issue["expression"] == ["Encounter.status"]
        found = fhir.get("/Patient", params={"identifier": "urn:oid:1.2.3|MRN-TX-BAD"}).json()
    assert found["total"] == 0  # the good Patient entry was not stored either


# ---- unmodified third-party FHIR clients ----


async def test_fhirpy_creates_updates_saves_and_sends_a_transaction(server: JourneyServer) -> None:
    from fhirpy import AsyncFHIRClient

    client = AsyncFHIRClient(server.fhir, authorization=f"Bearer {PUSH_KEY}")
    person = client.resource("Patient", **patient(mrn="MRN-FHIRPY"))
    await person.create()
    assert person.id  # the server's id, read back from the response
    person["gender"] = "other"
    await person.save()  # an update, now that it has an id
    visit = client.resource("Encounter", **emergency_visit(f"Patient/{person.id}"))
    await visit.save()
    await visit.update()  # same content again: the server keeps one version

    fetched = await client.reference("Patient", person.id).to_resource()
    assert fetched["gender"] == "other"
    assert fetched["meta"]["versionId"]
    reply = await client.execute("", method="post", data=us_core_transaction())
    assert reply["type"] == "transaction-response"
    assert [r["job"] for r in server.journey_of_patient(person.id)] == ["diagnose"]


def test_fhirclient_the_smart_python_client_pushes_and_reads_back(server: JourneyServer) -> None:
    from fhirclient import client
    from fhirclient.models.encounter import Encounter
    from fhirclient.models.patient import Patient

    smart = client.FHIRClient(settings={"app_id": "journey-test", "api_base": server.fhir + "/"})
    smart.server.session.headers["Authorization"] = f"Bearer {PUSH_KEY}"
    assert smart.server.capabilityStatement.fhirVersion == "4.0.1"

    person = Patient(patient("pat-fc", "MRN-FC"))
    person.update(smart.server)  # PUT with the client's id
    created = Encounter(emergency_visit("Patient/pat-fc")).create(smart.server)
    assert created is not None
    assert created["resourceType"] == "Encounter"

    read_back = Patient.read("pat-fc", smart.server)
    assert read_back.gender == "female"
    assert read_back.meta.versionId
    assert [r["job"] for r in server.journey_of_patient("pat-fc")] == ["diagnose"]


@pytest.mark.slow
def test_sekmet_as_a_pushing_ehr_seeds_patients_and_encounters(
    server: JourneyServer, tmp_path: Path
) -> None:
    """sekmet-fhir, an independent EHR simulator, pushes with its own FHIR client."""
    settings = tmp_path / "sekmet.yaml"
    settings.write_text(
        "log_inbound: false\n"
        "peers:\n"
        "  journey:\n"
        f"    base_url: {server.fhir}\n"
        "    auth:\n"
        "      type: bearer\n"
        f"      token: {PUSH_KEY}\n",
        encoding="utf-8",
    )
    env = {**os.environ, "SEKMET_CONFIG": str(settings), "SEKMET_DB": str(tmp_path / "s.db")}
    seeded = subprocess.run(
        [SEKMET, "seed", "--count", "4", "--target", "journey"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert seeded.returncode == 0, seeded.stdout[-2000:] + seeded.stderr[-2000:]
    lines = [line for line in seeded.stdout.splitlines() if line.startswith("Patient/")]
    assert len(lines) == 4
    admitted = [line for line in lines if "Encounter/" in line]
    assert admitted  # sekmet admits every other patient
    patient_id = admitted[0].split()[0].removeprefix("Patient/")
    records = server.journey_of_patient(patient_id)
    assert records
    assert all(r["source"]["source"] == "riverside" for r in records)


def match_parameters(patient: dict[str, Any], **options: Any) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [{"name": "resource", "resource": patient}]
    if "only_certain" in options:
        parameters.append({"name": "onlyCertainMatches", "valueBoolean": options["only_certain"]})
    if "count" in options:
        parameters.append({"name": "count", "valueInteger": options["count"]})
    return {"resourceType": "Parameters", "parameter": parameters}


async def test_patient_match_grades_the_stored_patients_that_may_be_this_one(
    server: JourneyServer,
) -> None:
    """A receptionist's search before registering: the same woman is certain; one with
    her name and address but another birth year (her mother?) is for a person to
    judge; nothing is linked or stored by asking."""
    from fhirpy import AsyncFHIRClient

    home = {
        "address": [
            {"use": "home", "line": ["7 Quarry Rd"], "city": "Bend", "postalCode": "97701"}
        ],
        "telecom": [{"system": "phone", "value": "541-555-0199"}],
        "gender": "female",
        "name": [{"family": "Varga", "given": ["Quintessa"]}],
    }
    pusher = AsyncFHIRClient(server.fhir, authorization=f"Bearer {PUSH_KEY}")
    her = pusher.resource("Patient", birthDate="1955-05-17", **home)
    await her.create()
    mother = pusher.resource("Patient", birthDate="1931-02-03", **home)
    await mother.create()

    reader = AsyncFHIRClient(server.fhir, authorization=f"Bearer {READ_KEY}")
    asked = {"resourceType": "Patient", "birthDate": "1955-05-17", **home}
    reply = await reader.execute("Patient/$match", method="post", data=match_parameters(asked))
    assert reply["type"] == "searchset"
    graded = {
        e["resource"]["id"]: (e["search"]["extension"][0]["valueCode"], e["search"]["score"])
        for e in reply["entry"]
    }
    assert graded[her.id][0] == "certain"
    assert graded[her.id][1] >= 0.999
    assert graded[mother.id][0] == "probable"
    assert reply["entry"][0]["resource"]["id"] == her.id  # best first
    only = await reader.execute(
        "Patient/$match", method="post", data=match_parameters(asked, only_certain=True, count=5)
    )
    assert [e["resource"]["id"] for e in only["entry"]] == [her.id]
    # The push key asks too, about its own source's Patients.
    own = await pusher.execute("Patient/$match", method="post", data=match_parameters(asked))
    assert her.id in {e["resource"]["id"] for e in own["entry"]}


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"resourceType": "Patient"}, "resourceType"),
        ({"resourceType": "Parameters", "parameter": []}, "Parameters.parameter"),
        (match_parameters({"resourceType": "Encounter"}), "Parameters.parameter"),
        (match_parameters(patient(), count=0), "Parameters.parameter[1]"),
        (match_parameters(patient(), only_certain="yes"), "Parameters.parameter[1]"),
    ],
)
def test_patient_match_refuses_what_is_not_a_match_request(
    server: JourneyServer, body: dict[str, Any], where: str
) -> None:
    with server.client(READ_KEY) as client:
        answer = client.post("/Patient/$match", json=body)
        assert answer.status_code == 400
        outcome = answer.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["expression"] == [where]
        assert (
            client.post("/Patient/$match", json=body, headers={"Authorization": ""}).status_code
            == 401
        )


def test_look_alike_patients_pushed_at_once_become_one_person_exactly_once(
    server: JourneyServer,
) -> None:
    """Two clinics' front desks register the same woman at the same moment (here one
    source pushing twice at once, each a separate Patient with her SSN): each Patient
    belongs to exactly one person, and it is the same person."""
    from concurrent.futures import ThreadPoolExecutor

    def push(pid: str, ssn: str) -> int:
        look_alike = {
            "resourceType": "Patient",
            "identifier": [{"system": "http://hl7.org/fhir/sid/us-ssn", "value": ssn}],
            "name": [{"family": "Ferreira", "given": ["Ines"]}],
            "birthDate": "1979-09-19",
            "gender": "female",
        }
        with server.client() as client:
            return client.put(f"/Patient/{pid}", json={**look_alike, "id": pid}).status_code

    with ThreadPoolExecutor(max_workers=2) as pool:
        for round_ in range(4):
            ssn = f"123-45-80{round_:02d}"
            pair = [f"twin-desk-{round_}-{side}" for side in ("a", "b")]
            assert sorted(pool.map(push, pair, [ssn, ssn])) == [201, 201]
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {READ_KEY}"}) as api:
        people = api.get("/people", params={"limit": 1000}).json()["items"]
    holders: dict[str, list[str]] = {}
    for found in people:
        for linked in found["sources"]:
            holders.setdefault(linked["patient_id"], []).append(found["id"])
    for round_ in range(4):
        a, b = (holders[f"twin-desk-{round_}-{side}"] for side in ("a", "b"))
        assert len(a) == 1
        assert a == b
