"""One person across sources, and never two people as one.

Each case states the matching rationale of its expected answer: an identifier
links Patients of different sources only when its system is trusted (and the
sender may assert it), its value names a person, and the demographics confirm it;
otherwise the pair waits for a reviewer. People are recomputed whenever a Patient
changes, so a link that no longer holds comes apart.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from integration.api.app import create_app
from integration.config import Settings
from integration.journey.identity import SourcePatient, link_patients
from integration.journey.rule_packs import set_store_pack
from integration.store import queries
from integration.store.matches import possible_matches
from mappings.rulepack import DEFAULT_PACK, RulePack
from tests.conftest import SSN, ImportFn, encounter, patient, person, write_ndjson

ALICE = {"name": [{"family": "Smith", "given": ["Alice"]}], "gender": "female"}


def people_of(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return queries.list_people(conn, 10_000)


def groups(engine: Engine) -> set[frozenset[tuple[str, str]]]:
    """Which source Patients are one person."""
    return {
        frozenset((s["source"], s["patient_id"]) for s in p["sources"]) for p in people_of(engine)
    }


def test_an_identifier_sent_with_another_persons_demographics_is_reviewed_not_merged(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    """A sender's Patient carries a clinic patient's SSN but another name and birth date:
    a typo or someone else's number. Merging would show the sender's emergency visit
    in her journey and his name on her: it must wait for review, and her person must
    keep her name."""
    her = person("alice", ssn="123-45-6780", birth_date="1980-02-02", **ALICE)
    import_files(
        write_ndjson(tmp_path / "a.ndjson", her, encounter("e-her", "alice", klass="AMB")),
        source="clinic",
    )
    intruder = person(
        "zed",
        ssn="123-45-6780",
        birth_date="1990-01-01",
        name=[{"family": "Jones", "given": ["Zed"]}],
    )
    import_files(
        write_ndjson(tmp_path / "b.ndjson", intruder, encounter("e-his", "zed", klass="EMER")),
        source="pusher",
    )
    assert groups(engine) == {frozenset({("clinic", "alice")}), frozenset({("pusher", "zed")})}
    shown = {p["sources"][0]["patient_id"]: p for p in people_of(engine)}
    assert (shown["alice"]["name"], shown["alice"]["birth_date"]) == ("Alice Smith", "1980-02-02")
    with engine.connect() as conn:
        journey = queries.journey(conn, shown["alice"]["id"], 10)
        [waiting] = possible_matches(conn, 10)
    assert [r["source"]["resource_id"] for r in journey] == ["e-her"]
    assert {waiting.a, waiting.b} == {("clinic", "alice"), ("pusher", "zed")}
    assert waiting.reason == "Same us-ssn, but the birth dates differ: to review"
    assert "123-45-6780" not in waiting.reason  # reasons name systems, never values


def test_placeholder_and_untrusted_identifiers_never_link(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    """000-00-0000 and 999999999 are what systems write when the SSN is unknown, and an
    MRN numbers one source's patients only: two Patients with other names and birth
    dates that share only those are two people, and nothing about them is worth a
    review."""
    mrn = "urn:oid:2.16.840.1.113883.19.5"
    shared = [
        {"system": SSN, "value": "000-00-0000"},
        {"system": SSN, "value": "999999999"},
        {"system": mrn, "value": "MRN-1"},
    ]
    for source, family, born in (("clinic", "Ngata", "1961-03-04"), ("plan", "Ruiz", "1990-11-30")):
        import_files(
            write_ndjson(
                tmp_path / f"{source}.ndjson",
                patient(
                    "p1",
                    identifier=shared,
                    birthDate=born,
                    name=[{"family": family, "given": [family[::-1]]}],
                ),
            ),
            source=source,
        )
    assert len(groups(engine)) == 2
    with engine.connect() as conn:
        assert possible_matches(conn, 10) == []


def test_demographics_alone_link_when_they_leave_no_doubt_and_are_reviewed_when_common(
    tmp_path: Path, engine: Engine, import_files: ImportFn, pack: RulePack
) -> None:
    """No identifier in common. Two Patients with a rare name, one birth date, one
    address and phone are one person. In a store of 2,000 where Smith and John are
    common, two John Smiths born on one day with nothing else in common may be
    namesakes: a reviewer decides (frequency-aware weights). Given names and birth
    dates both differing is another person: not even a review."""
    rules = pack.identity
    crowd = [
        patient(
            f"c{i}",
            name=[
                {"family": "Smith" if i % 3 else f"Fam{i}", "given": ["John" if i % 2 else "Al"]}
            ],
            birthDate=f"19{40 + i % 50}-0{1 + i % 9}-1{i % 9}",
        )
        for i in range(2000)
    ]
    with engine.begin() as conn:
        link_patients(conn, [SourcePatient("crowd", p["id"], p) for p in crowd], "t", rules)
    home = {
        "address": [{"use": "home", "line": ["12 Elm St"], "city": "Salem", "postalCode": "97301"}],
        "telecom": [{"system": "phone", "value": "(503) 555-0101"}],
        "gender": "female",
    }
    rare = {"name": [{"family": "Thorsdottir", "given": ["Ingrid"]}], "birthDate": "1962-07-21"}
    common = {"name": [{"family": "Smith", "given": ["John"]}], "birthDate": "1977-04-04"}
    other = {"name": [{"family": "Smith", "given": ["Al"]}], "birthDate": "1950-02-02"}
    for source in ("clinic", "plan"):
        import_files(
            write_ndjson(
                tmp_path / f"{source}.ndjson",
                patient("rare", **rare, **home),
                patient("common", **common),
                patient("other" if source == "plan" else "common2", **other, **home),
            ),
            source=source,
        )
    found = groups(engine)
    assert frozenset({("clinic", "rare"), ("plan", "rare")}) in found
    assert frozenset({("clinic", "common")}) in found
    with engine.connect() as conn:
        waiting = {frozenset((v.a, v.b)): v for v in possible_matches(conn, 100)}
    pair = waiting[frozenset({("clinic", "common"), ("plan", "common")})]
    assert pair.rule == "probabilistic"
    assert pair.fields["family"].startswith("exact")
    assert frozenset({("clinic", "common2"), ("plan", "other")}) not in waiting


def test_a_source_may_link_only_by_the_systems_it_may_assert(
    tmp_path: Path, engine: Engine, import_files: ImportFn, pack: RulePack
) -> None:
    """When the pack lets only the plan and the registry assert SSNs (a clinic that
    copies them from paper forms is not trusted to), the SSN joins the plan's and
    the registry's Patients (the registry has her married name: only the SSN can
    join them), but not the clinic's, which waits for review."""
    only_plan = tmp_path / "pack.toml"
    only_plan.write_text(
        DEFAULT_PACK.read_text()
        .replace(f'version = "{pack.version}"', 'version = "9999.2.0"')
        .replace(
            'system = "http://hl7.org/fhir/sid/us-ssn"\nsources = ["*"]',
            'system = "http://hl7.org/fhir/sid/us-ssn"\nsources = ["plan", "registry"]',
        )
    )
    set_store_pack(engine, only_plan)
    for source, family in (("plan", "Smith"), ("clinic", "Jones"), ("registry", "Okafor")):
        alice = person(
            "p", ssn="123-45-6781", name=[{"family": family, "given": ["Alice"]}], gender="female"
        )
        import_files(write_ndjson(tmp_path / f"{source}.ndjson", alice), source=source)
    assert groups(engine) == {
        frozenset({("plan", "p"), ("registry", "p")}),
        frozenset({("clinic", "p")}),
    }


def test_removing_the_shared_identifier_separates_the_patients_again(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    """A link is only as good as what makes it. The plan knows her by her married
    name: only the SSN joins the two Patients. When the plan corrects its member's
    SSN (a new version without it), nothing joins them any more: the clinic's
    Patient keeps the person id, the plan's gets its own, and the pair waits for a
    reviewer (same given name and birth date)."""
    married = {"name": [{"family": "Okafor", "given": ["Alice"]}], "gender": "female"}
    import_files(
        write_ndjson(tmp_path / "a.ndjson", person("a", ssn="123-45-6782", **ALICE)),
        source="clinic",
    )
    import_files(
        write_ndjson(tmp_path / "b.ndjson", person("b", ssn="123-45-6782", **married)),
        source="plan",
    )
    [joined] = people_of(engine)
    corrected = person(
        "b", meta={"versionId": "2", "lastUpdated": "2026-01-01T00:00:00Z"}, **married
    )
    import_files(write_ndjson(tmp_path / "b2.ndjson", corrected), source="plan")
    apart = {p["sources"][0]["patient_id"]: p["id"] for p in people_of(engine)}
    assert set(apart) == {"a", "b"}
    assert apart["a"] == joined["id"]
    assert apart["a"] != apart["b"]
    with engine.connect() as conn:
        [waiting] = possible_matches(conn, 10)
    assert waiting.rule == "probabilistic"


def test_one_patient_carrying_two_peoples_ssns_does_not_merge_them(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    """A Patient holding Alice's SSN and Bob's (a data-entry error) matches Alice by
    name and birth date; its pair with Bob disagrees on both and waits for review.
    Alice and Bob stay two people, whatever order the Patients arrive in."""
    alice = person("alice", ssn="123-45-6783", birth_date="1980-02-02", **ALICE)
    bob = person(
        "bob",
        ssn="123-45-6784",
        birth_date="1950-05-05",
        name=[{"family": "Brown", "given": ["Bob"]}],
    )
    import_files(write_ndjson(tmp_path / "a.ndjson", alice, bob), source="clinic")
    both = patient(
        "x",
        identifier=[
            {"system": SSN, "value": "123-45-6783"},
            {"system": SSN, "value": "123-45-6784"},
        ],
        birthDate="1980-02-02",
        **ALICE,
    )
    import_files(write_ndjson(tmp_path / "b.ndjson", both), source="plan")
    assert groups(engine) == {
        frozenset({("clinic", "alice"), ("plan", "x")}),
        frozenset({("clinic", "bob")}),
    }
    with engine.connect() as conn:
        [waiting] = possible_matches(conn, 10)
    assert {waiting.a, waiting.b} == {("clinic", "bob"), ("plan", "x")}


@pytest.mark.parametrize(
    ("missing", "why"),
    [("birthDate", "a birth date is missing"), ("name", "a name is missing")],
)
def test_a_patient_without_birth_date_or_name_is_never_linked_automatically(
    tmp_path: Path, engine: Engine, import_files: ImportFn, missing: str, why: str
) -> None:
    """Without a birth date or a name nothing confirms the identifier: review at most."""
    import_files(
        write_ndjson(tmp_path / "a.ndjson", person("a", ssn="123-45-6785")), source="clinic"
    )
    bare = person("b", ssn="123-45-6785")
    del bare[missing]
    import_files(write_ndjson(tmp_path / "b.ndjson", bare), source="plan")
    assert len(groups(engine)) == 2
    with engine.connect() as conn:
        [waiting] = possible_matches(conn, 10)
    assert waiting.reason == f"Same us-ssn, but {why}: to review"


def test_a_married_name_still_matches_by_given_name_and_birth_date(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    """A surname changed at marriage: same SSN, birth date and given name, another
    family name. One person."""
    import_files(
        write_ndjson(tmp_path / "a.ndjson", person("a", ssn="123-45-6786", **ALICE)),
        source="clinic",
    )
    married = person(
        "b", ssn="123-45-6786", name=[{"family": "Okafor", "given": ["Alice"]}], gender="female"
    )
    import_files(write_ndjson(tmp_path / "b.ndjson", married), source="plan")
    assert groups(engine) == {frozenset({("clinic", "a"), ("plan", "b")})}


def test_the_displayed_name_follows_source_trust_then_the_latest_update(
    tmp_path: Path, engine: Engine, import_files: ImportFn, pack: RulePack
) -> None:
    """Survivorship: without a trust order the most recently updated Patient names the
    person (not the alphabetically first source); with the plan trusted first, the
    plan's name, however old."""

    def alice(pid: str, family: str, updated: str) -> dict[str, Any]:
        return person(
            pid,
            ssn="123-45-6787",
            name=[{"family": family, "given": ["Alice"]}],
            meta={"lastUpdated": updated},
        )

    import_files(
        write_ndjson(tmp_path / "a.ndjson", alice("a", "Smith", "2026-05-01T00:00:00Z")),
        source="a-clinic",
    )
    import_files(
        write_ndjson(tmp_path / "b.ndjson", alice("b", "Smyth", "2025-01-01T00:00:00Z")),
        source="plan",
    )
    [shown] = people_of(engine)
    assert shown["name"] == "Alice Smith"  # the latest update
    trusting = tmp_path / "pack.toml"
    trusting.write_text(
        DEFAULT_PACK.read_text()
        .replace(f'version = "{pack.version}"', 'version = "9999.3.0"')
        .replace("source_trust = []", 'source_trust = ["plan"]')
    )
    set_store_pack(engine, trusting)
    import_files(
        write_ndjson(tmp_path / "c.ndjson", alice("a", "Smith", "2026-06-01T00:00:00Z")),
        source="a-clinic",
    )
    [shown] = people_of(engine)
    assert shown["name"] == "Alice Smyth"


def test_the_review_queue_shows_both_patients_side_by_side(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    import_files(
        write_ndjson(tmp_path / "a.ndjson", person("a", ssn="123-45-6788", **ALICE)),
        source="clinic",
    )
    other = person("b", ssn="123-45-6788", birth_date="1999-09-09", **ALICE)
    import_files(write_ndjson(tmp_path / "b.ndjson", other), source="plan")
    settings = Settings(api_keys=["k"], database_url=str(engine.url))
    with TestClient(create_app(settings, engine)) as client:
        body = client.get("/people/review", headers={"Authorization": "Bearer k"}).json()
        assert client.get("/people/review").status_code == 401
    [pair] = body["items"]
    assert (pair["a"]["source"], pair["a"]["name"], pair["a"]["birth_date"]) == (
        "clinic",
        "Alice Smith",
        "1970-01-01",
    )
    assert (pair["b"]["source"], pair["b"]["birth_date"]) == ("plan", "1999-09-09")
    assert pair["a"]["person_id"] != pair["b"]["person_id"]
    assert pair["fields"] == {
        "birth_date": "differs",
        "family": "same",
        "given": "same",
        "gender": "same",
    }
    review = subprocess.run(
        [str(Path(sys.executable).parent / "journey"), "people", "review"],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "JOURNEY_DATABASE_URL": engine.url.render_as_string(hide_password=False),
            "COLUMNS": "250",
        },
        cwd=tmp_path,
        timeout=120,
    )
    assert review.returncode == 0, review.stderr
    assert "1 possible matches" in review.stdout
    assert "the birth dates differ" in review.stdout


AUTH = {"Authorization": "Bearer k"}


def api(engine: Engine) -> TestClient:
    return TestClient(create_app(Settings(api_keys=["k"], database_url=str(engine.url)), engine))


def test_a_reviewers_link_and_keep_apart_survive_rematching(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    """A reviewer who has seen the papers links a pair the rules could only queue (a
    birth-date typo) and keeps apart a pair the rules linked (twins' shared SSN
    typed on both): the Patients arriving again change neither decision."""
    typo = person("b", ssn="123-45-6790", birth_date="1970-10-01", **ALICE)
    bea = {"name": [{"family": "Lund", "given": ["Bea"]}], "gender": "female"}
    twin_a = person("t1", ssn="123-45-6791", birth_date="1988-03-03", **bea)
    twin_b = person("t2", ssn="123-45-6791", birth_date="1988-03-03", **bea)
    import_files(
        write_ndjson(tmp_path / "a.ndjson", person("a", ssn="123-45-6790", **ALICE), twin_a),
        source="clinic",
    )
    import_files(write_ndjson(tmp_path / "b.ndjson", typo, twin_b), source="plan")
    assert frozenset({("clinic", "t1"), ("plan", "t2")}) in groups(engine)
    with api(engine) as client:
        linked = client.post(
            "/people/links",
            headers=AUTH,
            json={
                "a": {"source": "clinic", "patient_id": "a"},
                "b": {"source": "plan", "patient_id": "b"},
                "decision": "match",
                "reason": "birth date typo confirmed by phone",
            },
        )
        assert linked.status_code == 200, linked.text
        assert linked.json()["a"] == linked.json()["b"]
        apart = client.post(
            "/people/links",
            headers=AUTH,
            json={
                "a": {"source": "clinic", "patient_id": "t1"},
                "b": {"source": "plan", "patient_id": "t2"},
                "decision": "no_match",
                "reason": "twins",
            },
        )
        assert apart.status_code == 200
        assert apart.json()["a"] != apart.json()["b"]
        import_files(write_ndjson(tmp_path / "again.ndjson", typo, twin_b), source="plan")
        expected = {
            frozenset({("clinic", "a"), ("plan", "b")}),
            frozenset({("clinic", "t1")}),
            frozenset({("plan", "t2")}),
        }
        assert groups(engine) == expected
        history = client.get(f"/people/{linked.json()['a']}/history", headers=AUTH).json()
    pair = [
        h for h in history["items"] if {h["a"]["patient_id"], h["b"]["patient_id"]} == {"a", "b"}
    ]
    assert [(h["outcome"], h["decided_by"].split(":")[0], h["rule"]) for h in pair] == [
        ("possible", "automatic", "identifier us-ssn"),
        ("match", "user", "reviewer"),
    ]
    assert pair[1]["reason"] == "birth date typo confirmed by phone"
    with engine.connect() as conn:
        waiting = {(v.a, v.b) for v in possible_matches(conn, 10)}
    assert (("clinic", "a"), ("plan", "b")) not in waiting  # decided: out of the queue


def test_merge_and_split_people_and_a_decision_on_a_merged_person_is_a_conflict(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    import_files(write_ndjson(tmp_path / "a.ndjson", person("a"), person("b")), source="clinic")
    first, second = sorted(p["id"] for p in people_of(engine))
    with api(engine) as client:
        merged = client.post(
            f"/people/{first}/merge", headers=AUTH, json={"into": second, "reason": "same"}
        )
        assert merged.status_code == 200, merged.text
        survivor = merged.json()["person_id"]
        assert len(people_of(engine)) == 1
        gone = first if survivor == second else second
        assert client.get(f"/people/{gone}", headers=AUTH).json()["id"] == survivor
        again = client.post(
            f"/people/{gone}/merge", headers=AUTH, json={"into": survivor, "reason": "x"}
        )
        assert again.status_code == 409
        assert survivor in again.json()["detail"]
        split = client.post(
            f"/people/{survivor}/split",
            headers=AUTH,
            json={"source": "clinic", "patient_id": "b", "reason": "not the same"},
        )
        assert split.status_code == 200, split.text
        assert len(people_of(engine)) == 2
        unknown = client.post(
            "/people/links",
            headers=AUTH,
            json={
                "a": {"source": "clinic", "patient_id": "a"},
                "b": {"source": "clinic", "patient_id": "nobody"},
                "decision": "match",
                "reason": "x",
            },
        )
        assert unknown.status_code == 404
        assert client.post("/people/links", headers=AUTH, json={"a": {}}).status_code in (400, 422)


def test_match_asks_only_about_the_sources_it_may_see_and_stores_nothing(
    tmp_path: Path, engine: Engine, import_files: ImportFn, pack: RulePack
) -> None:
    """$match for a push client: only its own source's Patients are candidates; and
    asking links nobody and queues nothing."""
    from integration.journey.patient_match import match_patient

    for source in ("clinic", "plan"):
        import_files(
            write_ndjson(tmp_path / f"{source}.ndjson", person("p", ssn="123-45-6799", **ALICE)),
            source=source,
        )
    before = groups(engine)
    asked = person("q", ssn="123-45-6799", **ALICE)
    with engine.connect() as conn:
        everywhere = match_patient(conn, asked, pack.identity)
        mine = match_patient(conn, asked, pack.identity, ["clinic"])
    assert {c.key for c in everywhere} == {("clinic", "p"), ("plan", "p")}
    assert [(c.key, c.grade) for c in mine] == [(("clinic", "p"), "certain")]
    assert groups(engine) == before


def test_the_founding_patient_split_off_gets_an_id_of_its_own(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    """The person's id came from its first Patient; when that Patient leaves (its SSN
    was someone else's, and so were its name and birth date), the two that stay keep
    the id and the one that left gets a new one, derived from it."""
    import_files(
        write_ndjson(
            tmp_path / "a.ndjson",
            person("a", ssn="123-45-7777", **ALICE),
            person("b", ssn="123-45-7777", **ALICE),
        ),
        source="clinic",
    )
    import_files(
        write_ndjson(tmp_path / "c.ndjson", person("c", ssn="123-45-7777", **ALICE)),
        source="plan",
    )
    [before] = people_of(engine)
    other = person(
        "a",
        birth_date="1933-03-03",
        name=[{"family": "Nakamura", "given": ["Ken"]}],
        gender="male",
        meta={"versionId": "2"},
    )
    import_files(write_ndjson(tmp_path / "a2.ndjson", other), source="clinic")
    after = {
        frozenset((s["source"], s["patient_id"]) for s in p["sources"]): p["id"]
        for p in people_of(engine)
    }
    assert after[frozenset({("clinic", "b"), ("plan", "c")})] == before["id"]
    assert after[frozenset({("clinic", "a")})] != before["id"]
