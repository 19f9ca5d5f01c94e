"""Each encounter rule of the default pack: an Encounter in, the job record and reason out."""

from __future__ import annotations

from typing import Any

import pytest

from mappings.encounter import EncounterContext, map_encounter, referenced_condition_ids
from mappings.evidence import Evidence
from mappings.fhir_values import Code
from mappings.model import Flag, Job, SourceRef
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


RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CVX = "http://hl7.org/fhir/sid/cvx"
LOINC = "http://loinc.org"


def linked(resource_type: str, code: tuple[str, str], recorded: str | None = None) -> Evidence:
    """A resource that names the encounter (`Procedure.encounter` and the like)."""
    element = {
        "Procedure": "procedure",
        "Condition": "condition",
        "MedicationRequest": "medication",
        "Immunization": "immunization",
        "DiagnosticReport": "report",
    }[resource_type]
    return Evidence(
        resource_type, f"{resource_type[:3].lower()}1", element, (Code(*code, None),),
        recorded, "e1",
    )  # fmt: skip


def known_before(code: tuple[str, str], since: str = "2020-05-01T00:00:00Z") -> Evidence:
    """A Condition of the patient recorded at an earlier visit."""
    return Evidence("Condition", "old1", "condition", (Code(*code, None),), since, "e0")


VISIT = "2025-03-01T10:00:00Z"
# (rule id, encounter, its evidence, expected job, a code the reason must name)
CASES: list[tuple[str, dict[str, Any], EncounterContext, Job, str]] = [
    (
        "encounter.evidence.treatment-given",
        enc(),
        EncounterContext(linked=[linked("Procedure", (CPT, "96413"))]),
        Job.TREAT,
        f"{CPT}|96413",
    ),
    (
        "encounter.reason.course-of-treatment",
        enc(reasonCode=[concept(ICD, "Z51.11", "Chemotherapy session")]),
        EncounterContext(),
        Job.TREAT,
        f"{ICD}|Z51.11",
    ),
    (
        "encounter.evidence.medication-in-acute-care",
        enc("EMER"),
        EncounterContext(linked=[linked("MedicationRequest", (RXNORM, "1049221"))]),
        Job.TREAT,
        f"{RXNORM}|1049221",
    ),
    (
        "encounter.reason.symptom-in-acute-care",
        enc("EMER", reasonCode=[concept(ICD, "R07.9", "Chest pain")]),
        EncounterContext(linked=[linked("MedicationRequest", (RXNORM, "1049221"))]),
        Job.DIAGNOSE,
        f"{ICD}|R07.9",
    ),
    (
        "encounter.reason.prevention",
        enc(reasonCode=[concept(ICD, "Z00.00")]),
        EncounterContext(),
        Job.KEEP_WELL,
        f"{ICD}|Z00.00",
    ),
    (
        "encounter.evidence.diagnostic-procedure",
        enc(),
        EncounterContext(linked=[linked("Procedure", (CPT, "45378"))]),
        Job.DIAGNOSE,
        f"{CPT}|45378",
    ),
    (
        "encounter.evidence.procedure-performed",
        enc(),
        EncounterContext(linked=[linked("Procedure", (CPT, "12002"))]),
        Job.TREAT,
        f"{CPT}|12002",
    ),
    (
        "encounter.reason.injury-or-emergency",
        enc(reasonCode=[concept(ICD, "S52.501A", "Fracture of radius")]),
        EncounterContext(),
        Job.TREAT,
        f"{ICD}|S52.501A",
    ),
    (
        "encounter.evidence.preventive-care",
        enc(),
        EncounterContext(linked=[linked("Immunization", (CVX, "140"))]),
        Job.KEEP_WELL,
        f"{CVX}|140",
    ),
    (
        "encounter.reason.known-concern",
        enc(reasonCode=[concept(ICD, "E11.9", "Type 2 diabetes")]),
        EncounterContext(history=[known_before((ICD, "E11.9"))]),
        Job.KEEP_WELL,
        f"{ICD}|E11.9",
    ),
    (
        "encounter.reason.new-diagnosis",
        enc(),
        EncounterContext(linked=[linked("Condition", (ICD, "J01.90"), VISIT)]),
        Job.DIAGNOSE,
        f"{ICD}|J01.90",
    ),
    (
        "encounter.reason.chronic-condition",
        enc(reasonCode=[concept(ICD, "E11.9", "Type 2 diabetes")]),
        EncounterContext(),
        Job.KEEP_WELL,
        f"{ICD}|E11.9",
    ),
    (
        "encounter.evidence.maintenance-medication",
        enc(),
        EncounterContext(linked=[linked("MedicationRequest", (RXNORM, "83367"))]),
        Job.KEEP_WELL,
        f"{RXNORM}|83367",
    ),
    (
        "encounter.reason.symptom",
        enc(reasonCode=[concept(ICD, "R07.9", "Chest pain")]),
        EncounterContext(),
        Job.DIAGNOSE,
        f"{ICD}|R07.9",
    ),
    (
        "encounter.reason.acute-illness",
        enc(reasonCode=[concept(ICD, "J02.9", "Acute pharyngitis")]),
        EncounterContext(),
        Job.DIAGNOSE,
        f"{ICD}|J02.9",
    ),
    ("encounter.class.inpatient", enc("IMP"), EncounterContext(), Job.TREAT, f"{ACT}|IMP"),
    (
        "encounter.type.keep-well-purpose",
        enc(type=[concept(SCT, "185349003", "Encounter for check up")]),
        EncounterContext(),
        Job.KEEP_WELL,
        f"{SCT}|185349003",
    ),
    (
        "encounter.type.finding-out-purpose",
        enc(type=[concept(SCT, "185345009", "Encounter for symptom")]),
        EncounterContext(),
        Job.DIAGNOSE,
        f"{SCT}|185345009",
    ),
    (
        "encounter.type.treatment-purpose",
        enc(type=[concept(SCT, "183495009")]),
        EncounterContext(),
        Job.TREAT,
        f"{SCT}|183495009",
    ),
    (
        "encounter.evidence.tests",
        enc(),
        EncounterContext(linked=[linked("DiagnosticReport", (LOINC, "4548-4"))]),
        Job.DIAGNOSE,
        f"{LOINC}|4548-4",
    ),
    (
        "encounter.type.established-patient-visit",
        enc(klass=None, type=[concept(CPT, "99213")]),
        EncounterContext(),
        Job.KEEP_WELL,
        f"{CPT}|99213",
    ),
    ("encounter.class.home-health", enc("HH"), EncounterContext(), Job.KEEP_WELL, f"{ACT}|HH"),
]


@pytest.mark.parametrize(
    ("rule_id", "encounter", "context", "job", "code"), CASES, ids=[c[0] for c in CASES]
)
def test_rule_places_encounter_with_reason(
    pack: RulePack,
    rule_id: str,
    encounter: dict[str, Any],
    context: EncounterContext,
    job: Job,
    code: str,
) -> None:
    record = map_encounter(encounter, REF, pack, context)
    assert (record.rule_id, record.job) == (rule_id, job)
    assert code in record.matched_codes
    assert code in record.reason
    assert record.pack_version == pack.label
    assert record.source_ref == REF
    assert record.subject_id == "p1"


def test_every_encounter_rule_of_the_pack_has_a_case(pack: RulePack) -> None:
    assert set(pack.encounter_rules) == {case[0] for case in CASES}


def test_evidence_names_the_resource_it_came_from(pack: RulePack) -> None:
    context = EncounterContext(linked=[linked("Procedure", (CPT, "96413"))])
    record = map_encounter(enc(), REF, pack, context)
    assert "(Procedure/pro1)" in record.reason


def test_a_therapy_procedure_outranks_the_generic_problem_visit_type(pack: RulePack) -> None:
    encounter = enc(type=[concept(SCT, "185347001", "Encounter for problem")])
    context = EncounterContext(linked=[linked("Procedure", (SCT, "91251008"))])
    record = map_encounter(encounter, REF, pack, context)
    assert record.job is Job.TREAT


def test_follow_up_of_a_concern_known_before_is_not_a_new_diagnose(pack: RulePack) -> None:
    encounter = enc(type=[concept(SCT, "185347001", "Encounter for problem")])
    context = EncounterContext(
        linked=[linked("Condition", (ICD, "E11.9"), VISIT)],
        history=[known_before((ICD, "E11.9"))],
    )
    record = map_encounter(encounter, REF, pack, context)
    assert (record.job, record.rule_id) == (Job.KEEP_WELL, "encounter.reason.known-concern")
    assert "known since 2020-05-01" in record.reason


def test_an_earlier_episode_that_ended_does_not_make_a_new_one_known(pack: RulePack) -> None:
    ended = Evidence(
        "Condition", "old1", "condition", (Code(ICD, "E11.9", None),),
        "2020-05-01T00:00:00Z", "e0", ended="2020-06-01T00:00:00Z",
    )  # fmt: skip
    context = EncounterContext(history=[ended])
    record = map_encounter(enc(reasonCode=[concept(ICD, "E11.9")]), REF, pack, context)
    assert record.rule_id == "encounter.reason.chronic-condition"


def test_planned_encounter_is_flagged_upcoming(pack: RulePack) -> None:
    record = map_encounter(enc(status="planned"), REF, pack)
    assert Flag.UPCOMING in record.flags


def test_cancelled_encounter_leaves_the_journey_with_the_reason(pack: RulePack) -> None:
    record = map_encounter(enc(status="cancelled"), REF, pack)
    assert record.excluded
    assert "cancelled" in record.reason


def test_social_findings_are_no_evidence(pack: RulePack) -> None:
    context = EncounterContext(linked=[linked("Condition", (SCT, "160903007"), VISIT)])
    record = map_encounter(enc(klass=None), REF, pack, context)
    assert record.job is Job.UNCLASSIFIED


def test_inpatient_stay_for_a_chronic_condition_is_treat_and_names_the_outranked_rule(
    pack: RulePack,
) -> None:
    context = EncounterContext(linked=[linked("Procedure", (CPT, "33533"))])
    record = map_encounter(enc("IMP", reasonCode=[concept(ICD, "I25.10")]), REF, pack, context)
    assert record.job is Job.TREAT
    assert "outranked encounter.class.inpatient" in record.reason


def test_ambulatory_visit_for_a_chronic_condition_is_keep_well(pack: RulePack) -> None:
    record = map_encounter(enc("AMB", reasonCode=[concept(ICD, "E11.65")]), REF, pack)
    assert record.job is Job.KEEP_WELL
    assert record.concern_codes == (f"{ICD}|E11.65",)


def test_icd10_codes_match_with_or_without_the_dot(pack: RulePack) -> None:
    dotted = map_encounter(enc(None, reasonCode=[concept(ICD, "E11.9")]), REF, pack)
    dotless = map_encounter(enc(None, reasonCode=[concept(ICD, "E119")]), REF, pack)
    assert dotted.rule_id == dotless.rule_id == "encounter.reason.chronic-condition"


def test_class_without_system_is_read_as_act_code(pack: RulePack) -> None:
    record = map_encounter(enc(None, **{"class": {"code": "IMP"}}), REF, pack)
    assert record.rule_id == "encounter.class.inpatient"
    assert record.setting == "inpatient"


def test_referenced_condition_codes_are_the_concern(pack: RulePack) -> None:
    encounter = enc(
        None,
        diagnosis=[{"condition": {"reference": "Condition/c1"}}],
        reasonReference=[{"reference": "Condition/c2"}, {"reference": "Observation/o1"}],
    )
    assert referenced_condition_ids(encounter) == ["c1", "c2"]
    c1 = Evidence("Condition", "c1", "condition", (Code(ICD, "I10", "Hypertension"),), None, None)
    context = EncounterContext(conditions={"c1": c1})
    record = map_encounter(encounter, REF, pack, context)
    assert record.job is Job.KEEP_WELL
    assert record.concern_codes == (f"{ICD}|I10",)
    assert "condition http://hl7.org/fhir/sid/icd-10-cm|I10 (Condition/c1)" in record.reason


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
    assert record.excluded


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
    resource = enc("IMP")
    del resource["period"]
    record = map_encounter(resource, REF, pack)
    assert record.occurred_start is None
    assert record.job is Job.TREAT
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
