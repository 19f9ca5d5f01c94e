"""Payers' claims (CARIN Blue Button ExplanationOfBenefit, and Claim) -> one job record.

A claim is read with the same rules and value sets as an Encounter: its lines
(`item.productOrService`: CPT, HCPCS, CDT, SNOMED CT, CVX, NDC) count as the visit's
type and procedures, its `diagnosis` (principal first) as conditions, its
`procedure` (ICD-10-PCS) as procedures and its drugs as medications; its type
(institutional inpatient or outpatient, professional, pharmacy, oral) gives the
care setting. A pharmacy claim is a maintenance medication (keep_well) when it is
a refill or a long supply, an acute course (treat) when it is a short new fill. A
claim that bills an Encounter already in the journey takes that Encounter's job
when its own lines say less. A preauthorization is upcoming care; an
entered-in-error or cancelled claim leaves the journey.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from mappings.dates import parse_interval
from mappings.decisions import Found
from mappings.encounter import CONCERN_ELEMENTS, place, usable
from mappings.errors import FhirDateError
from mappings.fhir_values import (
    WITHDRAWN_STATUSES,
    Code,
    concept_codes,
    concept_label,
    element_at,
    reference_id,
)
from mappings.model import Flag, Job, JobRecord, SourceRef
from mappings.rulepack import RulePack

CLAIM_TYPE = "http://terminology.hl7.org/CodeSystem/claim-type"
SUPPORTING_INFO = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBSupportingInfoType"
UPCOMING_USES = frozenset({"preauthorization", "predetermination"})
DRUG_SYSTEMS = frozenset(
    {"http://hl7.org/fhir/sid/ndc", "http://www.nlm.nih.gov/research/umls/rxnorm"}
)
IMMUNIZATION_SYSTEMS = frozenset({"http://hl7.org/fhir/sid/cvx"})
# Revenue codes 0450-0459: the emergency room.
EMERGENCY_REVENUE = "045"


def billed_encounter_ids(claim: Mapping[str, Any]) -> list[str]:
    """Ids of the Encounters a claim's lines name."""
    found: list[str] = []
    for item in _list(claim.get("item")):
        for reference in _list(item.get("encounter")):
            encounter = reference_id(reference, "Encounter")
            if encounter and encounter not in found:
                found.append(encounter)
    return found


def map_claim(
    claim: Mapping[str, Any],
    ref: SourceRef,
    pack: RulePack,
    billed: Mapping[str, JobRecord] | None = None,
) -> JobRecord:
    kind = _claim_type(claim)
    setting = _setting(claim, kind, pack)
    start, end, warnings = _when(claim, ref.resource_type)
    found = _evidence(claim, pack)
    record = JobRecord(
        job=Job.UNCLASSIFIED,
        source_ref=ref,
        subject_id=reference_id(claim.get("patient"), "Patient"),
        occurred_start=start,
        occurred_end=end,
        title=_title(claim, kind),
        setting=setting,
        concern_codes=tuple(
            dict.fromkeys(f.code.token for f in found if f.element in CONCERN_ELEMENTS)
        ),
        rule_id="unclassified",
        pack_version=pack.label,
        reason="",
        warnings=tuple(warnings),
    )
    status = claim.get("status")
    if status in WITHDRAWN_STATUSES:
        return replace(
            record,
            excluded=True,
            rule_id="claim.status.withdrawn",
            reason=f"{ref.resource_type}.status is {status}: no care to show",
        )
    if claim.get("use") in UPCOMING_USES:
        record = replace(record, flags=(Flag.UPCOMING,))
    if kind == "pharmacy":
        dispensed = _pharmacy(claim, record, pack)
        if dispensed is not None:
            return dispensed
    placed = place(record, found, setting, pack)
    return _or_billed(placed, claim, pack, billed or {})


def _or_billed(
    placed: JobRecord, claim: Mapping[str, Any], pack: RulePack, billed: Mapping[str, JobRecord]
) -> JobRecord:
    """The job of the Encounter the claim bills, when the claim's own lines say less."""
    own = pack.encounter_rules.get(placed.rule_id)
    for encounter_id in billed_encounter_ids(claim):
        encounter = billed.get(encounter_id)
        if encounter is None or encounter.job is Job.UNCLASSIFIED or encounter.excluded:
            continue
        theirs = pack.encounter_rules.get(encounter.rule_id)
        their_priority = theirs.priority if theirs else 0
        if own is None or own.priority < their_priority:
            return replace(
                placed,
                job=encounter.job,
                rule_id="claim.billed-encounter",
                reason=f"Bills Encounter/{encounter_id}, placed as {encounter.job}: "
                f"{encounter.reason}",
                matched_codes=encounter.matched_codes,
            )
    return placed


def _pharmacy(claim: Mapping[str, Any], record: JobRecord, pack: RulePack) -> JobRecord | None:
    refills = _supporting_number(claim, "refillnum")
    days = _supporting_number(claim, "dayssupply")
    if refills is not None and refills >= pack.maintenance_refills_at:
        why = f"refill number {refills:g}"
        job, rule = Job.KEEP_WELL, "claim.pharmacy.maintenance"
    elif days is not None and days >= pack.maintenance_days_supply_at:
        why = f"{days:g} days' supply"
        job, rule = Job.KEEP_WELL, "claim.pharmacy.maintenance"
    elif days is not None and days <= pack.acute_days_supply_up_to:
        why = f"a first fill of {days:g} days' supply"
        job, rule = Job.TREAT, "claim.pharmacy.acute-course"
    else:
        return None
    reason = (
        "A refill or long supply of a medication is maintenance that keeps the patient well"
        if job is Job.KEEP_WELL
        else "A short first fill is a course of treatment"
    )
    return replace(record, job=job, rule_id=rule, reason=f"{reason} ({why})")


def _evidence(claim: Mapping[str, Any], pack: RulePack) -> list[Found]:
    found: list[Found] = []
    for item in _list(claim.get("item")):
        for code in concept_codes(item.get("productOrService")):
            found.extend(_line(code, "ExplanationOfBenefit.item"))
    for diagnosis in _list(claim.get("diagnosis")):
        for code in concept_codes(diagnosis.get("diagnosisCodeableConcept")):
            found.append(Found("condition", code, None))
    for procedure in _list(claim.get("procedure")):
        for code in concept_codes(procedure.get("procedureCodeableConcept")):
            found.append(Found("procedure", code, None))
    return usable(found, pack)


def _line(code: Code, _where: str) -> list[Found]:
    if code.system in DRUG_SYSTEMS:
        return [Found("medication", code, None)]
    if code.system in IMMUNIZATION_SYSTEMS:
        return [Found("immunization", code, None)]
    return [Found("type", code, None), Found("procedure", code, None)]


def _claim_type(claim: Mapping[str, Any]) -> str | None:
    for code in concept_codes(claim.get("type")):
        if code.system == CLAIM_TYPE and code.code:
            return code.code
    return None


def _setting(claim: Mapping[str, Any], kind: str | None, pack: RulePack) -> str | None:
    for item in _list(claim.get("item")):
        for code in concept_codes(item.get("revenue")):
            if code.code and code.code.zfill(4).startswith(EMERGENCY_REVENUE):
                return "emergency"
    if kind is None:
        return None
    for code in concept_codes(claim.get("subType")):
        if code.code and (found := pack.claim_settings.get(f"{kind}/{code.code}")):
            return found
    return pack.claim_settings.get(kind)


def _supporting_number(claim: Mapping[str, Any], category: str) -> float | None:
    for info in _list(claim.get("supportingInfo")):
        codes = list(concept_codes(info.get("category")))
        if any(c.code == category for c in codes):
            for key in ("valueQuantity", "valueInteger", "valueDecimal"):
                value = info.get(key)
                if isinstance(value, dict):
                    value = value.get("value")
                if isinstance(value, int | float) and not isinstance(value, bool):
                    return float(value)
    return None


def _when(claim: Mapping[str, Any], kind: str) -> tuple[str | None, str | None, list[str]]:
    candidates: list[tuple[str, Any]] = [
        ("billablePeriod.start", element_at(claim, "billablePeriod", "start"))
    ]
    for item in _list(claim.get("item"))[:1]:
        candidates.append(("item[0].servicedDate", item.get("servicedDate")))
        candidates.append(
            ("item[0].servicedPeriod.start", element_at(item, "servicedPeriod", "start"))
        )
    candidates.append(("created", claim.get("created")))
    for name, value in candidates:
        if isinstance(value, str):
            try:
                interval = parse_interval(value, f"{kind}.{name}")
            except FhirDateError as exc:
                return None, None, [str(exc)]
            return (
                interval.start_iso,
                interval.end_iso,
                [interval.warning] if interval.warning else [],
            )
    return None, None, [f"{kind}.billablePeriod: missing; the record has no time"]


def _title(claim: Mapping[str, Any], kind: str | None) -> str:
    label = None
    for item in _list(claim.get("item")):
        label = concept_label(item.get("productOrService"))
        if label:
            break
    head = f"{kind.capitalize()} claim" if kind else "Claim"
    return f"{head}: {label}" if label else head


def _list(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
