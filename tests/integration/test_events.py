"""One event, one journey item: a provider's visit and the payer's claim for it.

Rationale of each expected answer: the provider recorded a knee physiotherapy
session as an Encounter (SNOMED CT physical therapy); the payer paid for it and
sends an ExplanationOfBenefit (CPT 97110, therapeutic exercise; ICD-10-CM M17.11).
Same person, same day, same setting, codes related through the rule pack: one
event, shown once with both sources. Another day, another person, or one
source's own two visits are separate events. A join follows the evidence.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from bench.linkage_population import physio_claim, physio_visit
from integration.store import queries
from tests.conftest import ImportFn, person, write_ndjson


def shown(engine: Engine) -> list[tuple[str, str, list[str]]]:
    """Every person's journey items: (day, source, sources joined into it)."""
    items = []
    with engine.connect() as conn:
        for found in queries.list_people(conn, 100):
            for record in queries.journey(conn, found["id"], 100):
                items.append(
                    (
                        (record["occurred_start"] or "")[:10],
                        record["source"]["source"],
                        [j["source"] for j in record["joined"]],
                    )
                )
    return sorted(items)


def load(tmp_path: Path, import_files: ImportFn, clinic: list[Any], plan: list[Any]) -> None:
    import_files(write_ndjson(tmp_path / "clinic.ndjson", *clinic), source="clinic")
    import_files(write_ndjson(tmp_path / "plan.ndjson", *plan), source="plan")


def test_a_visit_and_its_claim_are_one_item_with_both_sources(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    load(
        tmp_path,
        import_files,
        [person("p", ssn="123-45-7001"), physio_visit("e1", "p", "2026-03-02")],
        [person("m", ssn="123-45-7001"), physio_claim("c1", "m", "2026-03-02")],
    )
    [(day, source, joined)] = shown(engine)
    assert (day, source, joined) == ("2026-03-02", "clinic", ["plan"])
    with engine.connect() as conn:
        [found] = queries.list_people(conn, 10)
        [item] = queries.journey(conn, found["id"], 10)
        [hidden] = [
            r
            for r in queries.journey(
                conn, found["id"], 10, where=queries.JourneyFilter(include_excluded=True)
            )
            if r["event_of"]
        ]
    assert item["job"] == "treat"
    assert item["joined"][0]["resource_id"] == "c1"
    assert item["joined"][0]["why"].startswith("the same day, ambulatory")
    assert hidden["event_of"] == item["id"]
    assert "One event with: plan ExplanationOfBenefit/c1 (the same day" in item["reason"]["text"]


def test_other_days_other_people_and_one_sources_two_visits_stay_apart(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    load(
        tmp_path,
        import_files,
        [
            person("p", ssn="123-45-7002"),
            physio_visit("e1", "p", "2026-03-02"),
            physio_visit("e2", "p", "2026-03-02"),  # the clinic saw her twice that day
            person("q", ssn="123-45-7003", birth_date="1981-01-01"),
            physio_visit("e3", "q", "2026-03-09"),
        ],
        [
            person("m", ssn="123-45-7002"),
            physio_claim("c1", "m", "2026-03-05"),  # billed for another day
            person("n", ssn="123-45-7004", birth_date="1955-05-05"),
            physio_claim("c2", "n", "2026-03-09"),  # another person, same day as q's
        ],
    )
    assert [joined for _, _, joined in shown(engine)] == [[], [], [], [], []]


def test_a_join_follows_the_evidence(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    """The payer corrects the service date: the claim is another day's event. And when
    the plan's member turns out to be someone else (a reviewer splits them), nothing
    of hers is joined to his."""
    load(
        tmp_path,
        import_files,
        [person("p", ssn="123-45-7005"), physio_visit("e1", "p", "2026-03-02")],
        [person("m", ssn="123-45-7005"), physio_claim("c1", "m", "2026-03-02")],
    )
    assert [joined for _, _, joined in shown(engine)] == [["plan"]]
    moved = physio_claim("c1", "m", "2026-03-04") | {"meta": {"versionId": "2"}}
    import_files(write_ndjson(tmp_path / "fix.ndjson", moved), source="plan")
    assert [joined for _, _, joined in shown(engine)] == [[], []]
    moved_back = physio_claim("c1", "m", "2026-03-02") | {"meta": {"versionId": "3"}}
    import_files(write_ndjson(tmp_path / "back.ndjson", moved_back), source="plan")
    assert [joined for _, _, joined in shown(engine)] == [["plan"]]

    from integration.journey.review import split_patient
    from mappings.rulepack import load_rule_pack

    with engine.begin() as conn:
        split_patient(
            conn,
            ("plan", "m"),
            "not her",
            "reviewer",
            "2026-12-01T00:00:00Z",
            load_rule_pack().identity,
        )
    assert [joined for _, _, joined in shown(engine)] == [[], []]
