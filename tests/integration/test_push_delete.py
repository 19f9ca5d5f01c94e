"""Deletions travel through (issue #20, its push and journey side): providers DELETE
over /fhir with real FHIR clients (fhirpy) and plain httpx (Bundles, conditional
deletes), and the journey follows: records leave as tombstones, a Patient leaves its
person, a person with no Patient left is retired, the feed tells each removal. Run
against `journey serve` on SQLite and on PostgreSQL, two sources pushing."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import throwaway_store_url
from tests.integration.test_push import (
    FHIR_JSON,
    JOURNEY,
    emergency_visit,
    outcome_of,
    patient,
)
from tests.servers import free_port, wait_until_up

RIVERSIDE_KEY = "riverside-delete-key"
SUMMIT_KEY = "summit-delete-key"
READ_KEY = "reader-key"
SSN = "http://hl7.org/fhir/sid/us-ssn"


@dataclass(frozen=True)
class Server:
    url: str

    def fhir(self, key: str = RIVERSIDE_KEY) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.url}/fhir",
            headers={"Authorization": f"Bearer {key}", "Content-Type": FHIR_JSON},
            timeout=30,
        )

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {READ_KEY}"}, timeout=30
        )

    def person_of(self, source: str, patient_id: str) -> str | None:
        """The person a source Patient is listed under on /people, if any."""
        with self.api() as api:
            people = api.get("/people", params={"limit": 1000}).json()["items"]
        return next(
            (
                p["id"]
                for p in people
                if any(s == {"source": source, "patient_id": patient_id} for s in _sides(p))
            ),
            None,
        )

    def events(self, types: str, after: str | None = None) -> list[dict[str, Any]]:
        with self.api() as api:
            params = {"types": types, "limit": 1000, **({"after": after} if after else {})}
            reply = api.get("/feed", params=params)
        assert reply.status_code == 200, reply.text
        found: list[dict[str, Any]] = reply.json()["items"]
        return found

    def feed_position(self) -> str:
        with self.api() as api:
            cursor: str = api.get("/feed", params={"limit": 1000}).json()["next_cursor"]
        while True:
            with self.api() as api:
                page = api.get("/feed", params={"after": cursor, "limit": 1000}).json()
            if not page["items"]:
                return cursor
            cursor = page["next_cursor"]


def _sides(person: dict[str, Any]) -> list[dict[str, str]]:
    return [{"source": s["source"], "patient_id": s["patient_id"]} for s in person["sources"]]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One `journey serve` per backend for the module, two pushing sources; tests use
    their own ids, identifiers and SSNs."""
    directory = tmp_path_factory.mktemp("delete-server")
    config = directory / "journey.toml"
    config.write_text(
        '[[push_clients]]\nsource = "riverside"\nkey_env = "RIVERSIDE_PUSH_KEY"\n\n'
        '[[push_clients]]\nsource = "summit"\nkey_env = "SUMMIT_PUSH_KEY"\n',
        encoding="utf-8",
    )
    port = free_port()
    with throwaway_store_url(request.param, request, directory) as store_url:
        env = {
            **os.environ,
            "JOURNEY_CONFIG": str(config),
            "JOURNEY_DATABASE_URL": store_url,
            "JOURNEY_API_KEYS": READ_KEY,
            "RIVERSIDE_PUSH_KEY": RIVERSIDE_KEY,
            "SUMMIT_PUSH_KEY": SUMMIT_KEY,
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
            yield Server(url)
        finally:
            process.terminate()
            process.wait(timeout=20)


def person_patient(pid: str, ssn: str, **more: Any) -> dict[str, Any]:
    """A Patient two sources can be linked on: an SSN and demographics that agree."""
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": SSN, "value": ssn}],
        "name": [{"family": "Okafor", "given": ["Adaeze"]}],
        "gender": "female",
        "birthDate": "1968-04-12",
        **more,
    }


def journey(server: Server, person: str, **params: Any) -> dict[str, Any]:
    with server.api() as api:
        reply = api.get(f"/people/{person}/journey", params=params)
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


# ---- the FHIR interactions ----


async def test_fhirpy_deletes_a_resource_which_then_reads_as_gone_keeping_its_history(
    server: Server,
) -> None:
    from fhirpy import AsyncFHIRClient

    client = AsyncFHIRClient(f"{server.url}/fhir", authorization=f"Bearer {RIVERSIDE_KEY}")
    her = client.resource("Patient", **patient(mrn="MRN-DEL-FHIRPY"))
    await her.create()
    visit = client.resource("Encounter", **emergency_visit(f"Patient/{her.id}"))
    await visit.create()
    first_version = visit["meta"]["versionId"]

    await visit.delete()

    with server.fhir() as fhir:
        gone = fhir.get(f"/Encounter/{visit.id}")
        assert gone.status_code == 410
        assert outcome_of(gone)["issue"][0]["code"] == "deleted"
        # The versions before the deletion are still there to read.
        assert fhir.get(f"/Encounter/{visit.id}/_history/{first_version}").status_code == 200
        history = fhir.get(f"/Encounter/{visit.id}/_history").json()
        assert history["type"] == "history"
        assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "PUT"]
        assert "resource" not in history["entry"][0]
        deletion = history["entry"][0]["response"]["etag"].removeprefix('W/"').rstrip('"')
        assert fhir.get(f"/Encounter/{visit.id}/_history/{deletion}").status_code == 410
        # Gone from searches too.
        found = fhir.get("/Encounter", params={"_id": visit.id}).json()
        assert found["total"] == 0

    # Deleting again is fine and changes nothing.
    again = await client.execute(f"Encounter/{visit.id}", method="delete")
    assert "already deleted" in again["issue"][0]["diagnostics"]
    with server.fhir() as fhir:
        assert len(fhir.get(f"/Encounter/{visit.id}/_history").json()["entry"]) == 2

    # A PUT brings it back (FHIR: an update after a delete re-creates).
    await visit.save()
    with server.fhir() as fhir:
        assert fhir.get(f"/Encounter/{visit.id}").status_code == 200
        entries = fhir.get(f"/Encounter/{visit.id}/_history").json()["entry"]
        assert [e["response"]["status"] for e in entries] == [
            "201 Created",
            "204 No Content",
            "201 Created",
        ]


def test_delete_answers_an_operation_outcome_or_204_and_honours_if_match(server: Server) -> None:
    with server.fhir() as fhir:
        put = fhir.put("/Patient/del-match", json=patient("del-match"))
        assert put.status_code == 201
        version = put.headers["etag"]

        stale = fhir.delete("/Patient/del-match", headers={"If-Match": 'W/"999999"'})
        assert stale.status_code == 412
        assert "If-Match" in outcome_of(stale)["issue"][0]["diagnostics"]
        assert fhir.get("/Patient/del-match").status_code == 200  # nothing deleted

        done = fhir.delete(
            "/Patient/del-match", headers={"If-Match": version, "Prefer": "return=minimal"}
        )
        assert done.status_code == 204
        assert done.content == b""
        assert done.headers["etag"] != version  # the deletion is a version of its own
        assert fhir.get("/Patient/del-match").status_code == 410


def test_deleting_what_was_never_sent_is_fine_and_remembered(server: Server) -> None:
    """A delete that overtakes its create (a batch resent out of order): a version made
    before the deletion stays history; a later one (or one not saying when it was made)
    creates the resource again."""
    with server.fhir() as fhir:
        first = fhir.delete("/Patient/del-early")
        assert first.status_code == 200
        assert "remembered as deleted" in outcome_of(first)["issue"][0]["diagnostics"]
        late = patient("del-early") | {"meta": {"lastUpdated": "2020-01-01T00:00:00Z"}}
        reply = fhir.put(
            "/Patient/del-early", json=late, headers={"Prefer": "return=OperationOutcome"}
        )
        assert reply.status_code == 200
        assert any(i["code"] == "conflict" for i in outcome_of(reply)["issue"])
        assert fhir.get("/Patient/del-early").status_code == 410
        kept = fhir.get("/Patient/del-early/_history").json()["entry"]
        assert [e["request"]["method"] for e in kept] == ["PUT", "DELETE"]

        newer = patient("del-early") | {"meta": {"lastUpdated": "2999-01-01T00:00:00Z"}}
        assert fhir.put("/Patient/del-early", json=newer).status_code == 201
        assert fhir.get("/Patient/del-early").status_code == 200


def test_conditional_delete_by_identifier_deletes_one_and_refuses_several(server: Server) -> None:
    with server.fhir() as fhir:
        nothing = fhir.delete("/Patient", params={"identifier": "urn:oid:1.2.3|MRN-NOBODY"})
        assert nothing.status_code == 200
        assert "nothing to delete" in outcome_of(nothing)["issue"][0]["diagnostics"]

        fhir.put("/Patient/del-cond-1", json=patient("del-cond-1", mrn="MRN-DEL-COND"))
        fhir.put("/Patient/del-cond-2", json=patient("del-cond-2", mrn="MRN-DEL-COND"))
        several = fhir.delete("/Patient", params={"identifier": "urn:oid:1.2.3|MRN-DEL-COND"})
        assert several.status_code == 412
        assert fhir.get("/Patient/del-cond-1").status_code == 200
        assert fhir.get("/Patient/del-cond-2").status_code == 200

        fhir.put("/Patient/del-cond-3", json=patient("del-cond-3", mrn="MRN-DEL-ONE"))
        one = fhir.delete("/Patient", params={"identifier": "urn:oid:1.2.3|MRN-DEL-ONE"})
        assert one.status_code == 200
        assert fhir.get("/Patient/del-cond-3").status_code == 410


def test_a_push_key_cannot_delete_another_sources_resource(server: Server) -> None:
    with server.fhir(SUMMIT_KEY) as summit:
        assert summit.put("/Patient/del-theirs", json=patient("del-theirs")).status_code == 201
    with server.fhir(RIVERSIDE_KEY) as riverside:
        refused = riverside.delete("/Patient/del-theirs")
        assert refused.status_code == 404
        assert outcome_of(refused)["issue"][0]["code"] == "not-found"
    with server.fhir(SUMMIT_KEY) as summit:
        assert summit.get("/Patient/del-theirs").status_code == 200


def test_deleting_an_unknown_type_is_404_as_every_interaction_answers_it(server: Server) -> None:
    with server.fhir() as fhir:
        assert fhir.delete("/Patientt/x").status_code == 404
        assert fhir.delete("/Patientt", params={"identifier": "a|b"}).status_code == 404
        assert fhir.delete("/Patient", params={"name": "x"}).status_code == 400
        assert fhir.delete("/Patient/not%20an%20id").status_code in (400, 422)
        assert (
            fhir.delete("/Patient/x", headers={"Authorization": "Bearer nope"}).status_code == 401
        )


def test_bundles_carry_deletes(server: Server) -> None:
    with server.fhir() as fhir:
        for pid in ("del-b1", "del-b2", "del-b3"):
            fhir.put(
                f"/Patient/{pid}", json=patient(pid, mrn="MRN-DEL-B" if pid != "del-b1" else None)
            )
        transaction = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {"request": {"method": "DELETE", "url": "Patient/del-b1"}},
                {
                    "resource": patient("del-b4"),
                    "request": {"method": "PUT", "url": "Patient/del-b4"},
                },
                # Two match: the whole transaction fails, nothing is deleted.
                {
                    "request": {
                        "method": "DELETE",
                        "url": "Patient?identifier=urn:oid:1.2.3|MRN-DEL-B",
                    }
                },
            ],
        }
        refused = fhir.post("", json=transaction)
        assert refused.status_code == 412
        assert "Bundle.entry[2]" in outcome_of(refused)["issue"][0]["diagnostics"]
        assert fhir.get("/Patient/del-b1").status_code == 200
        assert fhir.get("/Patient/del-b4").status_code == 404

        transaction["entry"] = transaction["entry"][:2]
        done = fhir.post("", json=transaction).json()
        assert [e["response"]["status"] for e in done["entry"]] == ["200 OK", "201 Created"]
        assert fhir.get("/Patient/del-b1").status_code == 410

        batch = {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [
                {"request": {"method": "DELETE", "url": "Patient/del-b2"}},
                {
                    "request": {
                        "method": "DELETE",
                        "url": "Patient?identifier=urn:oid:1.2.3|MRN-DEL-B",
                    }
                },
                {"request": {"method": "DELETE", "url": "Patient/del-b1"}},
            ],
        }
        answered = fhir.post("", json=batch).json()["entry"]
        # The second entry's search finds only del-b3 by then: deleted, as the first was.
        assert [e["response"]["status"] for e in answered] == ["200 OK", "200 OK", "200 OK"]
        assert "already deleted" in answered[2]["response"]["outcome"]["issue"][0]["diagnostics"]
        assert fhir.get("/Patient/del-b2").status_code == 410
        assert fhir.get("/Patient/del-b3").status_code == 410

        twice = {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [
                {"request": {"method": "DELETE", "url": "Patient/del-b4"}},
                {
                    "resource": patient("del-b4"),
                    "request": {"method": "PUT", "url": "Patient/del-b4"},
                },
            ],
        }
        statuses = [e["response"]["status"] for e in fhir.post("", json=twice).json()["entry"]]
        assert statuses == ["400", "400"]  # one resource written twice: both refused


# ---- the journey follows ----


def test_a_deleted_encounter_leaves_the_journey_as_a_tombstone(server: Server) -> None:
    with server.fhir() as fhir:
        fhir.put("/Patient/del-j1", json=patient("del-j1"))
        fhir.put(
            "/Encounter/del-j1-visit",
            json=emergency_visit("Patient/del-j1") | {"id": "del-j1-visit"},
        )
    person = server.person_of("riverside", "del-j1")
    assert person is not None
    before = journey(server, person, episodes="true")
    assert [r["source"]["resource_id"] for r in before["items"]] == ["del-j1-visit"]
    assert before["episodes"]
    record = before["items"][0]["id"]
    position = server.feed_position()

    with server.fhir() as fhir:
        assert fhir.delete("/Encounter/del-j1-visit").status_code == 200

    after = journey(server, person, episodes="true")
    assert after["items"] == []
    assert after["episodes"] == []
    kept = journey(server, person, include_excluded="true")["items"]
    assert [(r["id"], r["excluded"], r["removed_reason"]) for r in kept] == [
        (record, True, "deleted by source")
    ]
    assert kept[0]["deleted_at"]
    removed = server.events("record.removed", position)
    assert [(e["subject"], e["person_id"]) for e in removed] == [(record, person)]

    with server.fhir() as fhir:
        again = emergency_visit("Patient/del-j1") | {"id": "del-j1-visit"}
        assert fhir.put("/Encounter/del-j1-visit", json=again).status_code == 201
    assert [r["id"] for r in journey(server, person)["items"]] == [record]
    assert [e["subject"] for e in server.events("record.added", position)] == [record]


def test_a_deleted_patient_leaves_its_person_and_the_last_one_retires_it(server: Server) -> None:
    with server.fhir(RIVERSIDE_KEY) as riverside:
        riverside.put("/Patient/del-p1", json=person_patient("del-p1", "123-45-6701"))
        riverside.put(
            "/Encounter/del-p1-visit",
            json=emergency_visit("Patient/del-p1") | {"id": "del-p1-visit"},
        )
    with server.fhir(SUMMIT_KEY) as summit:
        summit.put("/Patient/del-p1s", json=person_patient("del-p1s", "123-45-6701"))
    person = server.person_of("riverside", "del-p1")
    assert person is not None
    assert server.person_of("summit", "del-p1s") == person
    position = server.feed_position()

    with server.fhir(RIVERSIDE_KEY) as riverside:
        assert riverside.delete("/Patient/del-p1").status_code == 200
    with server.api() as api:
        left = api.get(f"/people/{person}").json()
    assert _sides(left) == [{"source": "summit", "patient_id": "del-p1s"}]
    # The deleted Patient's visit is in no one's journey any more.
    assert journey(server, person)["items"] == []
    changed = server.events("person.changed", position)
    assert [e["subject"] for e in changed] == [person]

    with server.fhir(SUMMIT_KEY) as summit:
        assert summit.delete("/Patient/del-p1s").status_code == 200
    assert server.person_of("summit", "del-p1s") is None
    with server.api() as api:
        assert api.get(f"/people/{person}").status_code == 404
        assert api.get(f"/people/{person}/journey").status_code == 404
    removed = server.events("person.removed", position)
    assert [(e["subject"], e["person_id"]) for e in removed] == [(person, person)]

    # Sent again, the Patient is someone again: linked afresh, a person created.
    with server.fhir(SUMMIT_KEY) as summit:
        again = person_patient("del-p1s", "123-45-6701")
        assert summit.put("/Patient/del-p1s", json=again).status_code == 201
    back = server.person_of("summit", "del-p1s")
    assert back is not None
    assert back in [e["subject"] for e in server.events("person.created", position)]
