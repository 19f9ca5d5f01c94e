"""Questionnaire safety: status, completeness, severity bands, the self-harm item, PHQ-2,
answers without a system, and instrument totals sent as Observations.

Written from the clinical rules before the mapping was changed: what a screen
means depends on whether it is whole, whether it still stands, and what its
answers say about risk, not only on its total.
"""

from __future__ import annotations

from typing import Any

import pytest

from mappings.evidence import Evidence
from mappings.fhir_values import Code
from mappings.model import Flag, Job, JobRecord, SourceRef
from mappings.questionnaire_response import map_instrument_responses
from mappings.rulepack import RulePack
from tests.mappings.test_questionnaire_rules import GAD7, LA, LOINC, PHQ9

# PHQ9[8], 44260-8: thoughts that you would be better off dead or of hurting yourself.


def coded(score: int, system: str | None = LOINC) -> dict[str, Any]:
    value: dict[str, Any] = {"code": LA[score]}
    if system:
        value["system"] = system
    return {"valueCoding": value}


def response(
    rid: str,
    questionnaire: str,
    codes: tuple[str, ...],
    scores: list[int],
    *,
    status: str = "completed",
    authored: str = "2025-03-01T10:00:00Z",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "resourceType": "QuestionnaireResponse",
        "id": rid,
        "questionnaire": questionnaire,
        "status": status,
        "subject": {"reference": "Patient/p1"},
        "authored": authored,
        "item": [
            {"linkId": code, "answer": [coded(s)]} for code, s in zip(codes, scores, strict=False)
        ],
        **extra,
    }


def phq9(rid: str, scores: list[int], **kw: Any) -> dict[str, Any]:
    return response(rid, "http://loinc.org/q/44249-1", PHQ9, scores, **kw)


def gad7(rid: str, scores: list[int], **kw: Any) -> dict[str, Any]:
    return response(rid, "http://loinc.org/q/69737-5", GAD7, scores, **kw)


def total_observation(rid: str, code: str, value: int, status: str = "final") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": status,
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2025-03-01T10:00:00Z",
        "valueInteger": value,
    }


def map_one(pack: RulePack, resource: dict[str, Any]) -> JobRecord:
    return map_all(pack, resource)[resource["id"]]


def map_all(pack: RulePack, *resources: dict[str, Any]) -> dict[str, JobRecord]:
    refs = [(SourceRef("clinic", r["resourceType"], r["id"], "h:x"), r) for r in resources]
    return {
        record.source_ref.resource_id: record for record in map_instrument_responses(refs, pack)
    }


def spread(total: int, items: int) -> list[int]:
    """Item answers (0-3 each) that add up to `total`, item 9 of a PHQ-9 left at 0."""
    scores = [0] * items
    for i in range(total):
        slot = i % (items - 1)
        scores[slot] += 1
    assert sum(scores) == total
    assert max(scores) <= 3
    return scores


# --------------------------------------------------------------------- status


def test_entered_in_error_screen_leaves_the_journey_however_high_its_score(
    pack: RulePack,
) -> None:
    record = map_one(pack, phq9("q1", [3] * 9, status="entered-in-error"))
    assert record.excluded
    assert record.job is not Job.DIAGNOSE
    assert "entered-in-error" in record.reason


def test_in_progress_gad7_with_four_of_seven_items_is_incomplete_not_a_negative_screen(
    pack: RulePack,
) -> None:
    record = map_one(pack, gad7("g1", [0, 1, 0, 1], status="in-progress"))
    assert Flag.INCOMPLETE in record.flags
    assert record.score is None
    assert record.band is None
    assert record.job is not Job.KEEP_WELL
    assert "4 of 7" in record.reason
    assert "in-progress" in record.reason


def test_stopped_response_is_incomplete_even_with_every_item_answered(pack: RulePack) -> None:
    record = map_one(pack, gad7("g1", [0] * 7, status="stopped"))
    assert Flag.INCOMPLETE in record.flags
    assert record.score is None


def test_completed_response_with_an_item_missing_is_incomplete_and_unscored(
    pack: RulePack,
) -> None:
    record = map_one(pack, phq9("q1", [3, 3, 3, 3, 3, 3, 3, 3]))
    assert Flag.INCOMPLETE in record.flags
    assert record.score is None
    assert "8 of 9" in record.reason


def test_amended_response_supersedes_the_earlier_one_with_the_same_identifier(
    pack: RulePack,
) -> None:
    identifier = {"system": "urn:clinic:forms", "value": "F-1"}
    first = phq9("q1", [2] * 9, identifier=identifier)
    amended = phq9(
        "q2", [1] * 9, status="amended", authored="2025-03-01T11:00:00Z", identifier=identifier
    )
    records = map_all(pack, first, amended)
    # Kept as what was recorded then, flagged; the amended one carries the current answers.
    assert Flag.SUPERSEDED in records["q1"].flags
    assert not records["q1"].excluded
    assert "q2" in records["q1"].reason
    assert not records["q2"].excluded
    assert records["q2"].score == 9


def test_amended_response_without_an_earlier_one_stands(pack: RulePack) -> None:
    record = map_one(pack, phq9("q2", [1] * 8 + [0], status="amended"))
    assert not record.excluded
    assert record.score == 8
    assert record.flags == ()


# ---------------------------------------------------------------------- bands


@pytest.mark.parametrize(
    ("total", "band"),
    [
        (0, "minimal"),
        (4, "minimal"),
        (5, "mild"),
        (9, "mild"),
        (10, "moderate"),
        (14, "moderate"),
        (15, "moderately severe"),
        (19, "moderately severe"),
        (20, "severe"),
        (24, "severe"),
    ],
)
def test_phq9_severity_band_is_on_the_record_and_in_the_reason(
    pack: RulePack, total: int, band: str
) -> None:
    record = map_one(pack, phq9("q1", spread(total, 9)))
    assert (record.score, record.band) == (total, band)
    assert band in record.reason


@pytest.mark.parametrize(
    ("total", "band"),
    [(0, "minimal"), (4, "minimal"), (5, "mild"), (9, "mild"), (10, "moderate"),
     (14, "moderate"), (15, "severe"), (21, "severe")],
)  # fmt: skip
def test_gad7_severity_band(pack: RulePack, total: int, band: str) -> None:
    scores = [3] * (total // 3) + ([total % 3] if total % 3 else [])
    scores += [0] * (7 - len(scores))
    record = map_one(pack, gad7("g1", scores))
    assert (record.score, record.band) == (total, band)


def test_scored_record_names_instrument_and_version(pack: RulePack) -> None:
    record = map_one(pack, phq9("q1", [1] * 9))
    assert record.instrument == "phq9"
    assert record.instrument_version
    assert "PHQ-9" in record.reason


# ------------------------------------------------------------------ self-harm


def test_phq9_item9_above_not_at_all_flags_self_harm_risk_even_with_a_low_total(
    pack: RulePack,
) -> None:
    record = map_one(pack, phq9("q1", [0, 0, 0, 0, 0, 0, 0, 0, 1]))
    assert record.score == 1
    assert record.band == "minimal"
    assert Flag.SELF_HARM_RISK in record.flags
    # A positive self-harm item needs assessment: it is not a negative screen.
    assert record.job is Job.DIAGNOSE
    assert "44260-8" in record.reason


def test_self_harm_flag_is_raised_on_an_incomplete_response_too(pack: RulePack) -> None:
    scores = [0, 0, 0, 0, 0, 0, 0, 0, 2]
    resp = phq9("q1", scores, status="in-progress")
    resp["item"] = [resp["item"][0], resp["item"][8]]
    record = map_one(pack, resp)
    assert {Flag.SELF_HARM_RISK, Flag.INCOMPLETE} <= set(record.flags)


def test_item9_at_not_at_all_raises_no_flag(pack: RulePack) -> None:
    record = map_one(pack, phq9("q1", [3, 3, 3, 3, 0, 0, 0, 0, 0]))
    assert Flag.SELF_HARM_RISK not in record.flags


# ------------------------------------------------------------ PHQ-2, answers


def test_phq2_is_recognised_by_its_loinc_panel(pack: RulePack) -> None:
    record = map_one(pack, response("p1", "http://loinc.org/q/55757-9", PHQ9[:2], [2, 1]))
    assert (record.instrument, record.score, record.job) == ("phq2", 3, Job.DIAGNOSE)


def test_phq2_is_recognised_by_its_two_items_without_a_canonical(pack: RulePack) -> None:
    resp = response("p1", "", PHQ9[:2], [0, 1])
    del resp["questionnaire"]
    record = map_one(pack, resp)
    assert (record.instrument, record.score, record.job) == ("phq2", 1, Job.DIAGNOSE)


def test_answer_code_without_a_system_is_scored_and_the_warning_names_the_missing_system(
    pack: RulePack,
) -> None:
    resp = phq9("q1", [1] * 9)
    resp["item"][3]["answer"] = [coded(2, system=None)]
    record = map_one(pack, resp)
    assert record.score == 10
    warning = next(w for w in record.warnings if "item[3]" in w)
    assert "system" in warning
    assert "LA6570-1" not in warning


def test_unknown_answer_code_leaves_the_screen_incomplete_naming_the_link_id_not_the_value(
    pack: RulePack,
) -> None:
    resp = phq9("q1", [1] * 9)
    resp["item"][2]["answer"] = [{"valueCoding": {"system": LOINC, "code": "LA9999-9"}}]
    record = map_one(pack, resp)
    assert record.score is None
    assert Flag.INCOMPLETE in record.flags
    warning = next(w for w in record.warnings if "item[2]" in w)
    assert "44259-0" in warning
    assert "LA9999-9" not in warning


@pytest.mark.parametrize("bad", [["LA6570-1"], {"code": "LA6570-1"}, 2, None])
def test_an_answer_code_that_is_not_text_is_not_counted_and_mapping_goes_on(
    pack: RulePack, bad: Any
) -> None:
    # The one-pass scoring looks the answer up by (item, system, code): a list or an
    # object where the code belongs must read as no match, not fail the lookup.
    resp = phq9("q1", [1] * 9)
    resp["item"][2]["answer"] = [{"valueCoding": {"system": LOINC, "code": bad}}]
    record = map_one(pack, resp)
    assert record.score is None
    assert Flag.INCOMPLETE in record.flags
    assert any("item[2]" in w and "44259-0" in w for w in record.warnings)


# ------------------------------------------------------- totals as Observations


def test_phq9_total_sent_as_an_observation_is_a_scored_record(pack: RulePack) -> None:
    record = map_one(pack, total_observation("o1", "44261-6", 17))
    assert (record.instrument, record.score, record.band) == ("phq9", 17, "moderately severe")
    assert record.job is Job.DIAGNOSE
    assert "44261-6" in record.reason


def test_gad7_total_observation_with_a_quantity_value(pack: RulePack) -> None:
    observation = total_observation("o1", "70274-6", 0)
    del observation["valueInteger"]
    observation["valueQuantity"] = {"value": 3, "unit": "{score}"}
    record = map_one(pack, observation)
    assert (record.instrument, record.score, record.band) == ("gad7", 3, "minimal")


def test_entered_in_error_total_observation_leaves_the_journey(pack: RulePack) -> None:
    record = map_one(pack, total_observation("o1", "44261-6", 22, status="entered-in-error"))
    assert record.excluded
    assert record.job is not Job.DIAGNOSE


def test_total_out_of_the_instruments_range_is_not_scored(pack: RulePack) -> None:
    record = map_one(pack, total_observation("o1", "44261-6", 40))
    assert record.score is None
    assert any("0-27" in w for w in record.warnings)


def test_an_observation_that_is_no_instrument_total_gives_no_record(pack: RulePack) -> None:
    hba1c = total_observation("o1", "4548-4", 7)
    assert map_all(pack, hba1c) == {}


def test_a_positive_screen_then_a_repeat_total_observation_is_monitoring(pack: RulePack) -> None:
    screen = phq9("q1", [2] * 9, authored="2025-01-10T09:00:00Z")
    repeat = total_observation("o1", "44261-6", 8)
    records = map_all(pack, screen, repeat)
    assert records["q1"].job is Job.DIAGNOSE
    assert records["o1"].job is Job.KEEP_WELL


def test_a_screen_of_a_concern_diagnosed_before_monitors_it(pack: RulePack) -> None:
    depression = Evidence(
        "Condition", "c1", "condition", (Code("http://hl7.org/fhir/sid/icd-10-cm", "F33.1", None),),
        "2023-09-01T00:00:00Z", None,
    )  # fmt: skip
    refs = [(SourceRef("clinic", "QuestionnaireResponse", "q1", "h:x"), phq9("q1", [2] * 8 + [0]))]
    [record] = map_instrument_responses(refs, pack, [depression])
    assert (record.job, record.rule_id) == (Job.KEEP_WELL, "questionnaire.monitoring")
    assert "Condition/c1 since 2023-09-01" in record.reason


def test_a_sender_s_own_link_ids_are_read_in_item_order_with_a_warning(pack: RulePack) -> None:
    resp = phq9("q1", [1] * 8 + [0])
    for i, item in enumerate(resp["item"]):
        item["linkId"] = str(i + 1)
    record = map_one(pack, resp)
    assert record.score == 8
    assert any("item order" in w for w in record.warnings)


def test_item9_in_a_panel_member_observation_flags_the_total(pack: RulePack) -> None:
    total = total_observation("o1", "44261-6", 4)
    total["hasMember"] = [{"reference": "Observation/o9"}]
    item9 = {
        "resourceType": "Observation",
        "id": "o9",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "44260-8"}]},
        "valueCodeableConcept": {"coding": [{"system": LOINC, "code": "LA6569-3"}]},
    }
    refs = [(SourceRef("clinic", "Observation", "o1", "h:x"), total)]
    [record] = map_instrument_responses(refs, pack, panel={"o9": item9})
    assert Flag.SELF_HARM_RISK in record.flags
