"""Cohort measures: each figure's numerator and denominator follow its definition."""

from __future__ import annotations

from typing import Any

from mappings.episodes import ShownRecord, build_episodes, episode_json
from mappings.model import Job, ScaleScore
from mappings.outcomes import CohortFilter, cohort_facts, cohort_measures
from mappings.rulepack import RulePack

ICD = "http://hl7.org/fhir/sid/icd-10-cm"
AS_OF = "2026-06-01T00:00:00Z"


def visit(
    rid: str, job: Job, when: str, *codes: str, source: str = "clinic", setting: str = "ambulatory"
) -> ShownRecord:
    return ShownRecord(
        rid,
        job,
        f"{when}T09:00:00Z",
        source,
        "Encounter",
        setting,
        tuple(f"{ICD}|{c}" for c in codes),
    )


def phq9(rid: str, when: str, score: float) -> ShownRecord:
    return ShownRecord(
        rid, Job.KEEP_WELL, f"{when}T10:00:00Z", "clinic", "QuestionnaireResponse",
        "questionnaire", instrument="phq9", scores=(ScaleScore("total", score),),
    )  # fmt: skip


def survey(rid: str, job: Job, when: str, score: int) -> ShownRecord:
    return ShownRecord(
        rid, job, f"{when}T12:00:00Z", "clinic", "QuestionnaireResponse", "questionnaire",
        fulfilment_score=score,
    )  # fmt: skip


def episodes_of(
    pack: RulePack, people: dict[str, list[ShownRecord]]
) -> list[tuple[str, dict[str, Any]]]:
    return [
        (person, cohort_facts(episode_json(e, AS_OF)))
        for person, items in people.items()
        for e in build_episodes(person, items, pack)
    ]


def measured(pack: RulePack, people: dict[str, list[ShownRecord]], **where: Any) -> dict[str, Any]:
    report = cohort_measures(episodes_of(pack, people), AS_OF, 12, CohortFilter(**where))
    return {m["id"]: m for m in report["measures"]} | {"report": report}


def test_retention_counts_people_treated_long_enough_ago(pack: RulePack) -> None:
    people = {
        # Treated in January 2025, back for keep-well care in June: retained.
        "back": [
            visit("b1", Job.DIAGNOSE, "2025-01-05", "E11.9"),
            visit("b2", Job.TREAT, "2025-01-20", "E11.9"),
            visit("b3", Job.KEEP_WELL, "2025-06-20", "E11.9"),
        ],
        # Treated in March 2025 and never seen again: not retained.
        "gone": [visit("g1", Job.TREAT, "2025-03-01", "E11.9")],
        # Treated a month ago: has not had the 12 months to come back, not counted.
        "recent": [visit("r1", Job.TREAT, "2026-05-01", "E11.9")],
    }
    retention = measured(pack, people)["retention"]
    assert (retention["numerator"], retention["denominator"]) == (1, 2)
    assert retention["value"] == 0.5


def test_bundle_adoption_and_median_wait(pack: RulePack) -> None:
    people = {
        "a": [
            visit("a1", Job.DIAGNOSE, "2025-09-01", "J45.909"),
            visit("a2", Job.TREAT, "2025-09-11", "J45.909", setting="emergency"),
        ],
        "b": [
            visit("b1", Job.DIAGNOSE, "2025-09-01", "J45.909"),
            visit("b2", Job.TREAT, "2025-10-01", "J45.909"),
        ],
        "c": [visit("c1", Job.DIAGNOSE, "2025-09-01", "J45.909")],
    }
    got = measured(pack, people)
    assert (got["bundle_adoption"]["numerator"], got["bundle_adoption"]["denominator"]) == (2, 3)
    wait = got["median_wait_days"]
    assert (wait["value"], wait["numerator"], wait["denominator"]) == (20, None, 2)


def test_prom_measures_and_a_survey_in_two_episodes_counted_once(pack: RulePack) -> None:
    people = {
        "p": [
            visit("v1", Job.TREAT, "2026-01-10", "F32.1", "E11.9"),
            survey("s1", Job.TREAT, "2026-01-12", 4),
            phq9("q1", "2026-01-10", 20),
            phq9("q2", "2026-04-10", 10),
        ]
    }
    got = measured(pack, people)
    assert got["report"]["episodes"] == 2  # depression and type 2 diabetes
    fulfilment = got["mean_fulfilment"]
    assert (fulfilment["numerator"], fulfilment["denominator"], fulfilment["value"]) == (4, 1, 4)
    assert got["mean_fulfilment.treat"]["value"] == 4
    improved = got["reliable_improvement"]
    assert (improved["numerator"], improved["denominator"]) == (1, 1)
    assert got["mean_percent_prom_improvement"]["value"] == 50.0
    # 10 is still caseness: improved by 10 points, not recovered.
    assert (got["recovery"]["numerator"], got["recovery"]["denominator"]) == (0, 1)


def test_filters_narrow_the_episodes(pack: RulePack) -> None:
    people = {
        "p": [
            visit("h1", Job.DIAGNOSE, "2025-11-01", "I10", source="hospital"),
            visit("c1", Job.KEEP_WELL, "2026-02-01", "J45.909", source="clinic"),
        ]
    }
    assert measured(pack, people, source="hospital")["report"]["episodes"] == 1
    assert measured(pack, people, concern="icd10cm:J45")["report"]["episodes"] == 1
    assert measured(pack, people, job=Job.KEEP_WELL)["report"]["episodes"] == 1
    assert measured(pack, people, start_from="2026-01-01T00:00:00Z")["report"]["episodes"] == 1
    empty = measured(pack, people, concern="nothing")
    assert empty["report"]["episodes"] == 0
    assert empty["bundle_adoption"]["value"] is None  # no denominator, no value
