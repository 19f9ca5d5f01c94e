"""A source's own merge (FHIR Patient.link: the old Patient `replaced-by` the new one,
or the new one `replaces` the old) moves the old Patient's records to the survivor's
person, in process on both backends, whatever order the two arrive in, and undone
when the source withdraws the link.

Expected answers, from the FHIR R4 definition of `replaced-by` ("the patient resource
containing this link must no longer be used; the link points forward to another
patient resource that must be used in lieu of [it]"): the two are one person with
both Patients' encounters; the name shown is the survivor's; nothing else is joined
by such a link (another server's Patient, the Patient itself, a RelatedPerson)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from integration.api.app import create_app
from integration.config import Settings
from tests.conftest import encounter, patient, push_put

API_KEY = "merges-api-key"
PUSH_KEY = "merges-push-key"
SOURCE = "riverside"
API = {"Authorization": f"Bearer {API_KEY}"}
PUSH = {"Authorization": f"Bearer {PUSH_KEY}", "Content-Type": "application/fhir+json"}


@pytest.fixture
def client(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("MERGES_PUSH_KEY", PUSH_KEY)
    settings = Settings(
        api_keys=[API_KEY],
        database_url=str(engine.url),
        push_clients=[{"source": SOURCE, "key_env": "MERGES_PUSH_KEY"}],
    )
    with TestClient(create_app(settings, engine)) as test_client:
        yield test_client


def put(client: TestClient, resource: dict[str, Any]) -> None:
    push_put(client, resource, PUSH)


def named(pid: str, family: str, **extra: Any) -> dict[str, Any]:
    # Different names and birth dates: nothing but the link could join them.
    return patient(pid, name=[{"family": family, "given": ["Ann"]}], **extra)


def replaced_by(survivor: str) -> dict[str, Any]:
    return {
        "active": False,
        "link": [{"other": {"reference": f"Patient/{survivor}"}, "type": "replaced-by"}],
    }


def people(client: TestClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.get("/people", headers=API).json()["items"]
    return items


def patients_by_person(client: TestClient) -> list[set[str]]:
    return sorted(
        ({s["patient_id"] for s in person["sources"]} for person in people(client)), key=sorted
    )


def encounters_of(client: TestClient, person_id: str) -> set[str]:
    answer = client.get(f"/people/{person_id}/journey", headers=API)
    assert answer.status_code == 200, answer.text
    return {item["source"]["resource_id"] for item in answer.json()["items"]}


def test_the_replaced_patients_records_join_the_survivors_person(client: TestClient) -> None:
    put(client, named("old", "Olderson", birthDate="1970-01-01"))
    put(client, encounter("e-old", "old"))
    put(client, named("new", "Newman", birthDate="1971-02-02"))
    put(client, encounter("e-new", "new"))
    assert patients_by_person(client) == [{"new"}, {"old"}]

    put(client, named("old", "Olderson", birthDate="1970-01-01", **replaced_by("new")))

    [person] = people(client)
    assert {s["patient_id"] for s in person["sources"]} == {"old", "new"}
    assert person["name"] == "Ann Newman"  # the survivor's, not the corrected one's
    assert encounters_of(client, person["id"]) == {"e-old", "e-new"}
    merged = client.get("/feed", headers=API, params={"types": "person.merged"}).json()["items"]
    assert len(merged) == 1


def test_a_survivor_arriving_after_the_link_is_joined_when_it_does(client: TestClient) -> None:
    put(client, named("old", "Olderson", **replaced_by("new")))
    put(client, encounter("e-old", "old"))
    # The survivor is not stored yet: the old Patient is a person of its own meanwhile.
    assert patients_by_person(client) == [{"old"}]

    put(client, named("new", "Newman"))

    assert patients_by_person(client) == [{"new", "old"}]


def test_the_survivor_may_declare_it_with_replaces(client: TestClient) -> None:
    put(client, named("old", "Olderson"))
    link = [{"other": {"reference": "Patient/old"}, "type": "replaces"}]
    put(client, named("new", "Newman", link=link))
    [person] = people(client)
    assert {s["patient_id"] for s in person["sources"]} == {"old", "new"}
    assert person["name"] == "Ann Newman"


def test_chains_of_merges_are_one_person(client: TestClient) -> None:
    put(client, named("a", "Aa", **replaced_by("b")))
    put(client, named("b", "Bb", **replaced_by("c")))
    put(client, named("c", "Cc"))
    [person] = people(client)
    assert {s["patient_id"] for s in person["sources"]} == {"a", "b", "c"}
    assert person["name"] == "Ann Cc"


def test_withdrawing_the_link_separates_them_again(client: TestClient) -> None:
    put(client, named("old", "Olderson", **replaced_by("new")))
    put(client, named("new", "Newman"))
    assert patients_by_person(client) == [{"new", "old"}]

    put(client, named("old", "Olderson"))  # the source undid its merge

    assert patients_by_person(client) == [{"new"}, {"old"}]


def test_deleting_the_survivor_leaves_the_old_patient_on_its_own(client: TestClient) -> None:
    put(client, named("old", "Olderson", **replaced_by("new")))
    put(client, encounter("e-old", "old"))
    put(client, named("new", "Newman"))
    assert client.delete("/fhir/Patient/new", headers=PUSH).status_code == 200
    [person] = people(client)
    assert {s["patient_id"] for s in person["sources"]} == {"old"}
    assert encounters_of(client, person["id"]) == {"e-old"}


@pytest.mark.parametrize(
    "link",
    [
        {
            "other": {"reference": "https://elsewhere.example/fhir/Patient/new"},
            "type": "replaced-by",
        },
        {"other": {"reference": "Patient/old"}, "type": "replaced-by"},
        {"other": {"reference": "RelatedPerson/new"}, "type": "replaced-by"},
        {"other": {"reference": "Patient/new"}, "type": "seealso"},
        {"other": {"display": "no reference"}, "type": "replaced-by"},
    ],
    ids=["another-server", "itself", "related-person", "seealso", "no-reference"],
)
def test_links_that_name_no_survivor_here_join_nothing(
    client: TestClient, link: dict[str, Any]
) -> None:
    put(client, named("new", "Newman"))
    put(client, named("old", "Olderson", link=[link]))
    assert patients_by_person(client) == [{"new"}, {"old"}]
