"""Shared helpers for building the review set (not part of the project's code)."""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CASES = ROOT / "cases"

BASE = "https://review-set.example.org/fhir/"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
SCT = "http://snomed.info/sct"
LOINC = "http://loinc.org"
CPT = "http://www.ama-assn.org/go/cpt"
HCPCS = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
NDC = "http://hl7.org/fhir/sid/ndc"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
PCS = "http://www.cms.gov/Medicare/Coding/ICD10"
CVX = "http://hl7.org/fhir/sid/cvx"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CDT = "http://www.ada.org/cdt"


def validate_bundle(bundle: dict) -> None:
    from fhir.resources.R4B.bundle import Bundle

    Bundle.model_validate(bundle)


def write_case(name: str, resources: list[dict]) -> str:
    """Write one collection Bundle; the first resource is the focal one."""
    bundle = {
        "resourceType": "Bundle",
        "id": f"{name}-bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": f"{BASE}{r['resourceType']}/{r['id']}", "resource": r} for r in resources
        ],
    }
    check_refs(bundle)
    validate_bundle(bundle)
    CASES.mkdir(parents=True, exist_ok=True)
    path = CASES / f"{name}.json"
    path.write_text(json.dumps(bundle, indent=1, ensure_ascii=False) + "\n")
    return path.name


def iter_refs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "reference" and isinstance(v, str):
                yield v
            else:
                yield from iter_refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from iter_refs(v)


def check_refs(bundle: dict) -> None:
    have = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]}
    for e in bundle["entry"]:
        for ref in iter_refs(e["resource"]):
            if ref.startswith("#"):
                continue
            if ref not in have:
                raise ValueError(f"{bundle['id']}: dangling reference {ref}")


def toml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def toml_case(c: dict) -> str:
    order = [
        "file",
        "focal",
        "job",
        "flags",
        "instrument",
        "score",
        "band",
        "ambiguous",
        "origin",
        "rationale",
    ]
    lines = ["[[case]]"]
    for k in order:
        if k not in c or c[k] is None:
            continue
        v = c[k]
        if isinstance(v, bool):
            lines.append(f"{k} = {'true' if v else 'false'}")
        elif isinstance(v, int):
            lines.append(f"{k} = {v}")
        elif isinstance(v, list):
            lines.append(f"{k} = [" + ", ".join(toml_str(x) for x in v) + "]")
        else:
            lines.append(f"{k} = {toml_str(v)}")
    return "\n".join(lines) + "\n"
