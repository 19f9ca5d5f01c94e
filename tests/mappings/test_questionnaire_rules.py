"""QuestionnaireResponse rules: PHQ-9 / GAD-7 scored from answers, screening vs monitoring,
and the job-fulfilment survey."""

from __future__ import annotations

import random
from typing import Any

from mappings.instruments import measure_response, read_answers
from mappings.model import Flag, Job, SourceRef
from mappings.questionnaire_response import map_instrument_responses
from mappings.rulepack import RulePack

LOINC = "http://loinc.org"
PHQ9 = (
    "44250-9",
    "44255-8",
    "44259-0",
    "44254-1",
    "44251-7",
    "44258-2",
    "44252-5",
    "44253-3",
    "44260-8",
)
GAD7 = ("69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7")
LA = ("LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9")
FULFILMENT = "http://fhir-journey.example/Questionnaire/job-fulfilment"
JOB_SYSTEM = "http://fhir-journey.example/CodeSystem/jtbd-job"


def coded(score: int) -> dict[str, Any]:
    return {"valueCoding": {"system": LOINC, "code": LA[score]}}


def phq9(
    rid: str, authored: str, scores: list[int], total: int | None = None, nested: bool = True
) -> dict[str, Any]:
    items = [
        {"linkId": f"/44249-1/{code}", "answer": [coded(s)]}
        for code, s in zip(PHQ9, scores, strict=False)
    ]
    body: list[dict[str, Any]] = [{"linkId": "/44249-1", "item": items}] if nested else items
    if total is not None:
        body.append({"linkId": "/44261-6", "answer": [{"valueInteger": total}]})
    return {
        "resourceType": "QuestionnaireResponse",
        "id": rid,
        "questionnaire": "http://loinc.org/q/44249-1",
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "authored": authored,
        "item": body,
    }


def ref(rid: str) -> SourceRef:
    return SourceRef("clinic", "QuestionnaireResponse", rid, "h:x")


def map_all(pack: RulePack, *responses: dict[str, Any]) -> dict[str, Any]:
    records = map_instrument_responses([(ref(r["id"]), r) for r in responses], pack)
    return {record.source_ref.resource_id: record for record in records}


def test_positive_phq9_is_diagnose_scored_from_nested_answers(pack: RulePack) -> None:
    record = map_all(pack, phq9("q1", "2025-01-10T09:00:00Z", [2, 2, 2, 1, 2, 1, 1, 1, 0]))["q1"]
    assert (record.job, record.rule_id) == (Job.DIAGNOSE, "questionnaire.screen.positive")
    assert (record.instrument, record.score) == ("phq9", 12)
    assert "PHQ-9 score 12 of 0-27, moderate" in record.reason
    assert record.concern_codes == ("http://snomed.info/sct|35489007",)


def test_answers_nested_under_an_answer_are_scored(pack: RulePack) -> None:
    response = phq9("q1", "2025-01-10T09:00:00Z", [], nested=False)
    response["item"] = [
        {
            "linkId": "screen",
            "answer": [
                {
                    "valueBoolean": True,
                    "item": [{"linkId": code, "answer": [coded(3)]} for code in PHQ9],
                }
            ],
        }
    ]
    assert map_all(pack, response)["q1"].score == 27


def test_total_item_that_disagrees_with_the_answers_loses_with_a_warning(pack: RulePack) -> None:
    record = map_all(pack, phq9("q1", "2025-01-10T09:00:00Z", [1] * 8 + [0], total=20))["q1"]
    assert record.score == 8
    assert record.rule_id == "questionnaire.screen.negative"
    assert any("differs from the score of the answers" in w for w in record.warnings)


def test_repeat_within_window_after_a_positive_screen_is_keep_well_monitoring(
    pack: RulePack,
) -> None:
    records = map_all(
        pack,
        phq9("later", "2025-04-10T09:00:00Z", [1, 1, 1, 1, 1, 1, 1, 1, 3]),  # 11: still positive
        phq9("first", "2025-01-10T09:00:00Z", [2] * 8 + [0]),
        phq9("last", "2025-09-10T09:00:00Z", [0, 1, 0, 1, 0, 1, 0, 1, 0]),
    )
    assert records["first"].job is Job.DIAGNOSE
    assert (records["later"].job, records["later"].rule_id) == (
        Job.KEEP_WELL,
        "questionnaire.monitoring",
    )
    assert records["later"].title == "PHQ-9 monitoring"
    # The positive repeat extends the ongoing concern, so the last one is monitoring too.
    assert records["last"].rule_id == "questionnaire.monitoring"


def test_positive_screen_after_the_window_is_a_new_diagnose(pack: RulePack) -> None:
    records = map_all(
        pack,
        phq9("old", "2023-01-10T09:00:00Z", [2] * 8 + [0]),
        phq9("new", "2025-01-10T09:00:00Z", [2] * 8 + [0]),
    )
    assert records["new"].rule_id == "questionnaire.screen.positive"


def test_negative_first_screen_is_case_finding(pack: RulePack) -> None:
    # A screen finds out whether something is wrong, whatever it finds (review set).
    record = map_all(pack, phq9("q1", "2025-01-10T09:00:00Z", [0, 1, 0, 0, 1, 0, 0, 0, 0]))["q1"]
    assert (record.job, record.rule_id) == (Job.DIAGNOSE, "questionnaire.screen.negative")
    assert "below 10" in record.reason


def test_gad7_is_recognised_by_link_ids_without_a_canonical(pack: RulePack) -> None:
    response = {
        "resourceType": "QuestionnaireResponse",
        "id": "g1",
        "status": "completed",
        "authored": "2025-02-01",
        "item": [{"linkId": code, "answer": [{"valueInteger": 2}]} for code in GAD7],
    }
    record = map_all(pack, response)["g1"]
    assert (record.instrument, record.score, record.job) == ("gad7", 14, Job.DIAGNOSE)


def test_ordinal_value_extension_weights_the_answer(pack: RulePack) -> None:
    response = phq9("q1", "2025-01-10T09:00:00Z", [0] * 9)
    ordinal = {"url": "http://hl7.org/fhir/StructureDefinition/ordinalValue", "valueDecimal": 3}
    response["item"][0]["item"][0]["answer"] = [
        {"valueCoding": {"system": "urn:local", "code": "x", "extension": [ordinal]}}
    ]
    instrument = pack.instruments[0]
    measured = measure_response(read_answers(response), instrument, "completed")
    assert measured.primary is not None
    assert measured.primary.value == 3


def test_a_response_with_items_unanswered_is_counted_but_not_scored(pack: RulePack) -> None:
    record = map_all(pack, phq9("q1", "2025-01-10T09:00:00Z", [3, 3, 3, 3]))["q1"]
    assert record.score is None
    assert Flag.INCOMPLETE in record.flags
    assert "4 of 9 items answered" in record.reason


def test_total_only_response_uses_the_total_with_a_warning(pack: RulePack) -> None:
    record = map_all(pack, phq9("q1", "2025-01-10T09:00:00Z", [], total=15))["q1"]
    assert (record.score, record.job) == (15, Job.DIAGNOSE)
    assert any("used the total" in w for w in record.warnings)


def test_response_without_scoreable_answers_is_unclassified(pack: RulePack) -> None:
    response = phq9("q1", "2025-01-10T09:00:00Z", [])
    response["item"][0]["item"] = [{"linkId": PHQ9[0], "answer": [{"valueString": "often"}]}]
    record = map_all(pack, response)["q1"]
    assert (record.job, record.rule_id) == (Job.DIAGNOSE, "questionnaire.screen.incomplete")
    assert Flag.INCOMPLETE in record.flags
    assert "no score" in record.reason
    assert any("item[0].item[0].answer[0]" in w for w in record.warnings)


def test_unknown_questionnaire_is_unclassified_with_reason(pack: RulePack) -> None:
    response = {
        "resourceType": "QuestionnaireResponse",
        "id": "x1",
        "questionnaire": "http://example.org/Questionnaire/food",
        "status": "completed",
        "authored": "2025-01-01T00:00:00Z",
        "item": [{"linkId": "q", "answer": [{"valueString": "pizza"}]}],
    }
    record = map_all(pack, response)["x1"]
    assert record.job is Job.UNCLASSIFIED
    assert f"not an instrument of pack {pack.label}" in record.reason


def survey(rid: str, job: str | None, score: int) -> dict[str, Any]:
    items: list[dict[str, Any]] = [
        {"linkId": "job-fulfilment", "answer": [{"valueInteger": score}]}
    ]
    if job:
        items.insert(
            0,
            {
                "linkId": "job-hired",
                "answer": [{"valueCoding": {"system": JOB_SYSTEM, "code": job}}],
            },
        )
    return {
        "resourceType": "QuestionnaireResponse",
        "id": rid,
        "questionnaire": FULFILMENT,
        "status": "completed",
        "authored": "2025-06-01T00:00:00Z",
        "item": items,
    }


def test_fulfilment_survey_takes_the_job_the_patient_hired_and_the_score(pack: RulePack) -> None:
    record = map_all(pack, survey("s1", "treat", 4))["s1"]
    assert (record.job, record.fulfilment_score) == (Job.TREAT, 4)
    assert record.rule_id == "questionnaire.fulfilment-survey"
    assert "hired for treat, fulfilment 4/5" in record.reason


def test_fulfilment_survey_without_a_job_is_unclassified_but_keeps_the_score(
    pack: RulePack,
) -> None:
    record = map_all(pack, survey("s1", None, 2))["s1"]
    assert (record.job, record.fulfilment_score) == (Job.UNCLASSIFIED, 2)


def test_fulfilment_score_out_of_range_is_ignored_with_a_warning(pack: RulePack) -> None:
    record = map_all(pack, survey("s1", "diagnose", 9))["s1"]
    assert record.fulfilment_score is None
    assert any("not 1-5" in w for w in record.warnings)


def test_fulfilment_question_inside_a_phq9_is_kept_on_its_record(pack: RulePack) -> None:
    response = phq9("q1", "2025-01-10T09:00:00Z", [2] * 8 + [0])
    response["item"].append({"linkId": "job-fulfilment", "answer": [{"valueInteger": 5}]})
    assert map_all(pack, response)["q1"].fulfilment_score == 5


def test_result_does_not_depend_on_input_order(pack: RulePack) -> None:
    responses = [phq9(f"q{i}", f"2025-0{i + 1}-10T09:00:00Z", [i % 4] * 9) for i in range(6)]
    first = map_instrument_responses([(ref(r["id"]), r) for r in responses], pack)
    shuffled = list(responses)
    random.Random(3).shuffle(shuffled)
    second = map_instrument_responses([(ref(r["id"]), r) for r in shuffled], pack)
    assert first == second
