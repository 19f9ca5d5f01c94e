"""Each encounter rule of the default pack: an Encounter in, the job record and reason out."""

from __future__ import annotations

from typing import Any

import pytest

from mappings.encounter import EncounterContext, map_encounter, referenced_condition_ids
from mappings.fhir_values import Code
from mappings.model import Job, SourceRef
from mappings.rulepack import RulePack

ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
SCT = "http://snomed.info/sct"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
CPT = "http://www.ama-assn.org/go/cpt"
REF = SourceRef("clinic", "Encounter", "e1", "v:1")


def enc(klass: str | None = "AMB", **extra: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "finished",
        "subject": {"reference": "Patient/p1"},
        "period": {"start": "2025-03-01T10:00:00Z", "end": "2025-03-01T11:00:00Z"},
        **extra,
    }
    if klass:
        resource["class"] = {"system": ACT, "code": klass}
    return resource


def concept(system: str, code: str, display: str = "") -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display or code}]}


# (rule id, encounter, expected job, a code the reason must name)
CASES: list[tuple[str, dict[str, Any], Job, str]] = [
    ("encounter.class.inpatient", enc("IMP"), Job.TREAT, f"{ACT}|IMP"),
    ("encounter.class.emergency", enc("EMER"), Job.DIAGNOSE, f"{ACT}|EMER"),
    ("encounter.class.home-health", enc("HH"), Job.KEEP_WELL, f"{ACT}|HH"),
    ("encounter.class.virtual", enc("VR"), Job.KEEP_WELL, f"{ACT}|VR"),
    ("encounter.class.ambulatory", enc("AMB"), Job.DIAGNOSE, f"{ACT}|AMB"),
    (
        "encounter.type.procedure-or-therapy",
        enc(type=[concept(SCT, "91251008", "Physical therapy procedure")]),
        Job.TREAT,
        f"{SCT}|91251008",
    ),
    (
        "encounter.type.emergency-or-urgent",
        enc(klass=None, type=[concept(CPT, "99284")]),
        Job.DIAGNOSE,
        f"{CPT}|99284",
    ),
    (
        "encounter.type.preventive-or-follow-up",
        enc(type=[concept(SCT, "185349003", "Encounter for check up")]),
        Job.KEEP_WELL,
        f"{SCT}|185349003",
    ),
    (
        "encounter.type.diagnostic-consultation",
        enc(type=[concept(SCT, "11429006", "Consultation")]),
        Job.DIAGNOSE,
        f"{SCT}|11429006",
    ),
    (
        "encounter.reason.injury-or-acute-illness",
        enc(reasonCode=[concept(ICD, "S52.501A", "Fracture of radius")]),
        Job.TREAT,
        f"{ICD}|S52.501A",
    ),
    (
        "encounter.reason.chronic-condition",
        enc(reasonCode=[concept(ICD, "E11.9", "Type 2 diabetes")]),
        Job.KEEP_WELL,
        f"{ICD}|E11.9",
    ),
    (
        "encounter.reason.prevention",
        enc(reasonCode=[concept(ICD, "Z00.00")]),
        Job.KEEP_WELL,
        f"{ICD}|Z00.00",
    ),
    (
        "encounter.reason.symptom",
        enc(reasonCode=[concept(SCT, "29857009", "Chest pain")]),
        Job.DIAGNOSE,
        f"{SCT}|29857009",
    ),
    (
        "encounter.type.established-patient-visit",
        enc(klass=None, type=[concept(CPT, "99213")]),
        Job.KEEP_WELL,
        f"{CPT}|99213",
    ),
]


@pytest.mark.parametrize(("rule_id", "encounter", "job", "code"), CASES, ids=[c[0] for c in CASES])
def test_rule_places_encounter_with_reason(
    pack: RulePack, rule_id: str, encounter: dict[str, Any], job: Job, code: str
) -> None:
    record = map_encounter(encounter, REF, pack)
    assert (record.rule_id, record.job) == (rule_id, job)
    assert code in record.matched_codes
    assert code in record.reason
    assert record.pack_version == pack.label
    assert record.source_ref == REF
    assert record.subject_id == "p1"


def test_every_encounter_rule_of_the_pack_has_a_case(pack: RulePack) -> None:
    rule_ids = {
        rule.id
        for index in pack.encounter_index.values()
        for rules in [
            *index.exact.values(),
            *(r for p in index.prefixes.values() for r in p.values()),
        ]
        for rule in rules
    }
    assert rule_ids == {case[0] for case in CASES}


def test_inpatient_stay_for_a_chronic_condition_is_treat_and_names_the_outranked_rule(
    pack: RulePack,
) -> None:
    record = map_encounter(enc("IMP", reasonCode=[concept(ICD, "I50.9")]), REF, pack)
    assert record.job is Job.TREAT
    assert "outranked encounter.reason.chronic-condition" in record.reason


def test_ambulatory_visit_for_a_chronic_condition_is_keep_well(pack: RulePack) -> None:
    record = map_encounter(enc("AMB", reasonCode=[concept(ICD, "E11.65")]), REF, pack)
    assert record.job is Job.KEEP_WELL
    assert record.concern_codes == (f"{ICD}|E11.65",)


def test_icd10_codes_match_with_or_without_the_dot(pack: RulePack) -> None:
    dotted = map_encounter(enc(None, reasonCode=[concept(ICD, "E11.9")]), REF, pack)
    dotless = map_encounter(enc(None, reasonCode=[concept(ICD, "E119")]), REF, pack)
    assert dotted.rule_id == dotless.rule_id == "encounter.reason.chronic-condition"


def test_class_without_system_is_read_as_act_code(pack: RulePack) -> None:
    record = map_encounter(enc(None, **{"class": {"code": "EMER"}}), REF, pack)
    assert record.rule_id == "encounter.class.emergency"
    assert record.setting == "emergency"


def test_referenced_condition_codes_are_the_concern(pack: RulePack) -> None:
    encounter = enc(
        None,
        diagnosis=[{"condition": {"reference": "Condition/c1"}}],
        reasonReference=[{"reference": "Condition/c2"}, {"reference": "Observation/o1"}],
    )
    assert referenced_condition_ids(encounter) == ["c1", "c2"]
    context = EncounterContext({"c1": [Code(ICD, "I10", "Hypertension")]})
    record = map_encounter(encounter, REF, pack, context)
    assert record.job is Job.KEEP_WELL
    assert record.concern_codes == (f"{ICD}|I10",)
    assert "condition http://hl7.org/fhir/sid/icd-10-cm|I10" in record.reason


def test_encounter_no_rule_places_is_unclassified_with_what_was_looked_at(pack: RulePack) -> None:
    record = map_encounter(enc("FLD", type=[concept(SCT, "1234567")]), REF, pack)
    assert record.job is Job.UNCLASSIFIED
    assert record.rule_id == "unclassified"
    assert f"No rule in pack {pack.label} matched" in record.reason
    assert f"type {SCT}|1234567" in record.reason


def test_entered_in_error_encounter_is_not_evidence_of_care(pack: RulePack) -> None:
    record = map_encounter(enc("EMER", status="entered-in-error"), REF, pack)
    assert record.job is Job.UNCLASSIFIED
    assert record.rule_id == "encounter.status.not-care"


def test_partial_start_date_becomes_an_interval_with_a_warning(pack: RulePack) -> None:
    record = map_encounter(enc("EMER", period={"start": "2025-01"}), REF, pack)
    assert (record.occurred_start, record.occurred_end) == (
        "2025-01-01T00:00:00Z",
        "2025-02-01T00:00:00Z",
    )
    assert record.warnings == ("Encounter.period.start: partial date (year and month only)",)


def test_naive_date_time_is_read_as_utc_with_a_warning(pack: RulePack) -> None:
    record = map_encounter(enc("EMER", period={"start": "2025-01-28T00:00:00"}), REF, pack)
    assert record.occurred_start == "2025-01-28T00:00:00Z"
    assert "without timezone" in record.warnings[0]


def test_offsets_are_normalised_to_utc(pack: RulePack) -> None:
    record = map_encounter(
        enc(
            "EMER",
            period={"start": "2025-05-01T20:30:00-05:00", "end": "2025-05-02T01:00:00-05:00"},
        ),
        REF,
        pack,
    )
    assert (record.occurred_start, record.occurred_end) == (
        "2025-05-02T01:30:00Z",
        "2025-05-02T06:00:00Z",
    )


def test_missing_period_keeps_the_record_without_time(pack: RulePack) -> None:
    resource = enc("EMER")
    del resource["period"]
    record = map_encounter(resource, REF, pack)
    assert record.occurred_start is None
    assert record.job is Job.DIAGNOSE
    assert "Encounter.period.start: missing" in record.warnings[0]


def test_title_names_type_and_reason(pack: RulePack) -> None:
    record = map_encounter(
        enc(
            "EMER",
            type=[concept(SCT, "50849002", "Emergency room admission")],
            reasonCode=[{"text": "Chest pain"}],
        ),
        REF,
        pack,
    )
    assert record.title == "Emergency room admission: Chest pain"
