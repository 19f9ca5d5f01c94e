"""Small constructors for hand-written FHIR R4 resources (review set only)."""

from __future__ import annotations

from common import ACT


def cc(system: str | None, code: str, display: str | None = None, text: str | None = None) -> dict:
    coding: dict = {"code": code}
    if system:
        coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    out: dict = {"coding": [coding]}
    if text:
        out["text"] = text
    return out


def ref(rtype: str, rid: str) -> dict:
    return {"reference": f"{rtype}/{rid}"}


def patient(
    name: str, gender: str = "female", birth: str = "1970-05-14", family: str = "Example"
) -> dict:
    return {
        "resourceType": "Patient",
        "id": f"{name}-pat",
        "identifier": [
            {"system": "urn:oid:2.16.840.1.113883.19.5.99999.1", "value": f"MRN-{name}"}
        ],
        "name": [{"use": "official", "family": family, "given": ["Synthetic"]}],
        "gender": gender,
        "birthDate": birth,
    }


def encounter(
    name: str,
    *,
    cls: str = "AMB",
    start: str,
    end: str | None = None,
    status: str = "finished",
    types: list[dict] | None = None,
    reasons: list[dict] | None = None,
    reason_refs: list[dict] | None = None,
    diagnoses: list[tuple[str, str]] | None = None,
    suffix: str = "enc",
    service_type: dict | None = None,
    hospitalization: dict | None = None,
) -> dict:
    cls_display = {
        "AMB": "ambulatory",
        "EMER": "emergency",
        "IMP": "inpatient encounter",
        "VR": "virtual",
        "HH": "home health",
        "OBSENC": "observation encounter",
    }[cls]
    enc: dict = {
        "resourceType": "Encounter",
        "id": f"{name}-{suffix}",
        "status": status,
        "class": {"system": ACT, "code": cls, "display": cls_display},
        "subject": ref("Patient", f"{name}-pat"),
        "period": {"start": start, **({"end": end} if end else {})},
    }
    if types:
        enc["type"] = types
    if service_type:
        enc["serviceType"] = service_type
    if reasons:
        enc["reasonCode"] = reasons
    if reason_refs:
        enc["reasonReference"] = reason_refs
    if diagnoses:
        enc["diagnosis"] = [
            {
                "condition": ref("Condition", cid),
                **(
                    {"use": cc("http://terminology.hl7.org/CodeSystem/diagnosis-role", role)}
                    if role
                    else {}
                ),
                "rank": i + 1,
            }
            for i, (cid, role) in enumerate(diagnoses)
        ]
    if hospitalization:
        enc["hospitalization"] = hospitalization
    return enc


def condition(
    name: str,
    suffix: str,
    code: dict,
    *,
    recorded: str,
    onset: str | None = None,
    enc: str | None = None,
    clinical: str = "active",
    verification: str = "confirmed",
    category: str = "encounter-diagnosis",
) -> dict:
    c: dict = {
        "resourceType": "Condition",
        "id": f"{name}-{suffix}",
        "clinicalStatus": cc("http://terminology.hl7.org/CodeSystem/condition-clinical", clinical),
        "verificationStatus": cc(
            "http://terminology.hl7.org/CodeSystem/condition-ver-status", verification
        ),
        "category": [cc("http://terminology.hl7.org/CodeSystem/condition-category", category)],
        "code": code,
        "subject": ref("Patient", f"{name}-pat"),
        "recordedDate": recorded,
    }
    if onset:
        c["onsetDateTime"] = onset
    if enc:
        c["encounter"] = ref("Encounter", enc)
    return c


def procedure(
    name: str,
    suffix: str,
    code: dict,
    *,
    when: str,
    enc: str | None = None,
    status: str = "completed",
    reasons: list[dict] | None = None,
    reason_refs: list[dict] | None = None,
) -> dict:
    p: dict = {
        "resourceType": "Procedure",
        "id": f"{name}-{suffix}",
        "status": status,
        "code": code,
        "subject": ref("Patient", f"{name}-pat"),
        "performedDateTime": when,
    }
    if enc:
        p["encounter"] = ref("Encounter", enc)
    if reasons:
        p["reasonCode"] = reasons
    if reason_refs:
        p["reasonReference"] = reason_refs
    return p


def observation(
    name: str,
    suffix: str,
    code: dict,
    *,
    when: str,
    enc: str | None = None,
    status: str = "final",
    category: str = "laboratory",
    value: dict | None = None,
    components: list | None = None,
    has_member: list | None = None,
    interpretation: str | None = None,
) -> dict:
    o: dict = {
        "resourceType": "Observation",
        "id": f"{name}-{suffix}",
        "status": status,
        "category": [cc("http://terminology.hl7.org/CodeSystem/observation-category", category)],
        "code": code,
        "subject": ref("Patient", f"{name}-pat"),
        "effectiveDateTime": when,
    }
    if enc:
        o["encounter"] = ref("Encounter", enc)
    if value:
        o.update(value)
    if components:
        o["component"] = components
    if has_member:
        o["hasMember"] = has_member
    if interpretation:
        o["interpretation"] = [
            cc("http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", interpretation)
        ]
    return o


def qty(v: float, unit: str, code: str | None = None) -> dict:
    return {
        "valueQuantity": {
            "value": v,
            "unit": unit,
            "system": "http://unitsofmeasure.org",
            "code": code or unit,
        }
    }


def medreq(
    name: str,
    suffix: str,
    med: dict,
    *,
    when: str,
    enc: str | None = None,
    reasons: list[dict] | None = None,
    intent: str = "order",
    status: str = "active",
) -> dict:
    m: dict = {
        "resourceType": "MedicationRequest",
        "id": f"{name}-{suffix}",
        "status": status,
        "intent": intent,
        "medicationCodeableConcept": med,
        "subject": ref("Patient", f"{name}-pat"),
        "authoredOn": when,
    }
    if enc:
        m["encounter"] = ref("Encounter", enc)
    if reasons:
        m["reasonCode"] = reasons
    return m


def report(
    name: str,
    suffix: str,
    code: dict,
    *,
    when: str,
    enc: str | None,
    results: list[str],
    conclusion: str | None = None,
    category: str = "LAB",
    category_system: str = "http://terminology.hl7.org/CodeSystem/v2-0074",
) -> dict:
    r: dict = {
        "resourceType": "DiagnosticReport",
        "id": f"{name}-{suffix}",
        "status": "final",
        "category": [cc(category_system, category)],
        "code": code,
        "subject": ref("Patient", f"{name}-pat"),
        "effectiveDateTime": when,
        "issued": when,
        "result": [ref("Observation", r_) for r_ in results],
    }
    if enc:
        r["encounter"] = ref("Encounter", enc)
    if conclusion:
        r["conclusion"] = conclusion
    return r
