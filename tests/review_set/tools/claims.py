"""ExplanationOfBenefit (CARIN Blue Button shapes) and Claim constructors."""

from __future__ import annotations

from fhirmk import cc, ref

C4BB = "http://hl7.org/fhir/us/carin-bb/StructureDefinition/"
SUPP = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBSupportingInfoType"
DXTYPE = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBClaimDiagnosisType"
CLAIMTYPE = "http://terminology.hl7.org/CodeSystem/claim-type"
SUBTYPE = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBInstitutionalClaimSubType"
REV = "https://www.nubc.org/CodeSystem/RevenueCodes"
ADJ = "http://terminology.hl7.org/CodeSystem/adjudication"


def payer_context(name: str) -> list[dict]:
    return [
        {
            "resourceType": "Organization",
            "id": f"{name}-payer",
            "active": True,
            "type": [cc("http://terminology.hl7.org/CodeSystem/organization-type", "pay", "Payer")],
            "name": "Synthetic Health Plan",
        },
        {
            "resourceType": "Organization",
            "id": f"{name}-prov",
            "active": True,
            "type": [
                cc(
                    "http://terminology.hl7.org/CodeSystem/organization-type",
                    "prov",
                    "Healthcare Provider",
                )
            ],
            "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1999999984"}],
            "name": "Synthetic Provider Group",
        },
        {
            "resourceType": "Coverage",
            "id": f"{name}-cov",
            "status": "active",
            "beneficiary": ref("Patient", f"{name}-pat"),
            "payor": [ref("Organization", f"{name}-payer")],
            "relationship": cc(
                "http://terminology.hl7.org/CodeSystem/subscriber-relationship", "self"
            ),
        },
    ]


def _dx(seq: int, system: str, code: str, display: str, kind: str) -> dict:
    return {
        "sequence": seq,
        "diagnosisCodeableConcept": cc(system, code, display),
        "type": [cc(DXTYPE, kind)],
    }


def eob(
    name: str,
    *,
    profile: str,
    claim_type: str,
    start: str,
    end: str | None = None,
    subtype: str | None = None,
    diagnoses: list[tuple[str, str, str, str]] = (),  # (system, code, display, kind)
    procedures: list[tuple[str, str, str, str]] = (),  # (system, code, display, date)
    items: list[dict] = (),
    supporting: list[dict] = (),
    status: str = "active",
    suffix: str = "eob",
) -> dict:
    e: dict = {
        "resourceType": "ExplanationOfBenefit",
        "id": f"{name}-{suffix}",
        "meta": {"profile": [C4BB + profile]},
        "identifier": [
            {
                "type": cc("http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBIdentifierType", "uc"),
                "system": "https://example.org/payer/claim-id",
                "value": f"CLM-{name}",
            }
        ],
        "status": status,
        "type": cc(CLAIMTYPE, claim_type),
        "use": "claim",
        "patient": ref("Patient", f"{name}-pat"),
        "billablePeriod": {"start": start, **({"end": end} if end else {})},
        "created": (end or start) if "T" in (end or start) else (end or start) + "T12:00:00Z",
        "insurer": ref("Organization", f"{name}-payer"),
        "provider": ref("Organization", f"{name}-prov"),
        "outcome": "complete",
        "insurance": [{"focal": True, "coverage": ref("Coverage", f"{name}-cov")}],
    }
    if subtype:
        e["subType"] = cc(SUBTYPE, subtype)
    sup = [{"sequence": 1, "category": cc(SUPP, "clmrecvddate"), "timingDate": (end or start)[:10]}]
    for i, s in enumerate(supporting, start=2):
        sup.append({"sequence": i, **s})
    e["supportingInfo"] = sup
    if diagnoses:
        e["diagnosis"] = [_dx(i + 1, *d) for i, d in enumerate(diagnoses)]
    if procedures:
        e["procedure"] = [
            {"sequence": i + 1, "date": p[3], "procedureCodeableConcept": cc(p[0], p[1], p[2])}
            for i, p in enumerate(procedures)
        ]
    out_items = []
    for i, it in enumerate(items):
        item = {"sequence": i + 1, **it}
        item.setdefault("servicedDate", start[:10])
        item.setdefault(
            "adjudication",
            [{"category": cc(ADJ, "submitted"), "amount": {"value": 100.0, "currency": "USD"}}],
        )
        out_items.append(item)
    if out_items:
        e["item"] = out_items
    e["total"] = [
        {
            "category": cc(ADJ, "submitted"),
            "amount": {"value": 100.0 * max(1, len(out_items)), "currency": "USD"},
        }
    ]
    return e


def line(
    system: str,
    code: str,
    display: str,
    *,
    revenue: str | None = None,
    dx_seq: list[int] | None = None,
    qty: float | None = None,
    extra: dict | None = None,
) -> dict:
    it: dict = {"productOrService": cc(system, code, display)}
    if revenue:
        it["revenue"] = cc(REV, revenue)
    if dx_seq:
        it["diagnosisSequence"] = dx_seq
    if qty is not None:
        it["quantity"] = {"value": qty}
    if extra:
        it.update(extra)
    return it


def claim(
    name: str,
    *,
    claim_type: str,
    created: str,
    diagnoses: list[tuple[str, str, str]] = (),
    items: list[dict] = (),
    status: str = "active",
    use: str = "claim",
    suffix: str = "claim",
) -> dict:
    c: dict = {
        "resourceType": "Claim",
        "id": f"{name}-{suffix}",
        "status": status,
        "type": cc(CLAIMTYPE, claim_type),
        "use": use,
        "patient": ref("Patient", f"{name}-pat"),
        "created": created,
        "provider": ref("Organization", f"{name}-prov"),
        "priority": cc("http://terminology.hl7.org/CodeSystem/processpriority", "normal"),
        "insurance": [{"sequence": 1, "focal": True, "coverage": ref("Coverage", f"{name}-cov")}],
    }
    if diagnoses:
        c["diagnosis"] = [
            {"sequence": i + 1, "diagnosisCodeableConcept": cc(d[0], d[1], d[2])}
            for i, d in enumerate(diagnoses)
        ]
    if items:
        c["item"] = [{"sequence": i + 1, **it} for i, it in enumerate(items)]
    return c
