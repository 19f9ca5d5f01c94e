"""Cut review cases out of clinosim Bulk-style NDJSON (one file per resource type).

  python clinosim_extract.py summarize NDJSON_DIR > summary.jsonl
  python clinosim_extract.py build NDJSON_DIR picks.toml START_NO

A case: the focal Encounter, its Patient, the Conditions it names (reasonReference, diagnosis) or that
name it, the patient's problem-list Conditions that began before the visit, and every Procedure,
Observation (first 60 by time), DiagnosticReport, MedicationRequest, MedicationAdministration,
ServiceRequest and Immunization whose encounter is the focal one, plus the Practitioner /
Organization / Location they point at. Ids become '<case>-<type><n>'; references to anything left
out (Specimen, Composition, CareTeam, other encounters) are removed so every reference resolves.
A resource that is not valid R4 is fixed minimally where the fix is obvious (see FIXES) or left out."""

from __future__ import annotations

import copy
import json
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import HERE, toml_case, write_case
from synthea_extract import ABBR, PARTY_TYPES, iter_refs, ts

CONTEXT = [
    "Procedure",
    "Observation",
    "DiagnosticReport",
    "MedicationRequest",
    "MedicationAdministration",
    "ServiceRequest",
    "Immunization",
]
OBS_CAP = 60
ABBR = {**ABBR, "ServiceRequest": "sr"}


class Store:
    def __init__(self, d: Path):
        self.by_ref: dict[str, dict] = {}
        self.by_type: dict[str, list[dict]] = defaultdict(list)
        for p in sorted(d.glob("*.ndjson")):
            for line in p.read_text().splitlines():
                if line.strip():
                    r = json.loads(line)
                    self.by_ref[f"{r['resourceType']}/{r['id']}"] = r
                    self.by_type[r["resourceType"]].append(r)
        self.by_enc: dict[str, list[dict]] = defaultdict(list)
        for t in ["Condition", *CONTEXT]:
            for r in self.by_type[t]:
                e = r.get("encounter") or r.get("context")
                if isinstance(e, dict) and "reference" in e:
                    self.by_enc[e["reference"]].append(r)
        self.conds_by_pat: dict[str, list[dict]] = defaultdict(list)
        for r in self.by_type["Condition"]:
            self.conds_by_pat[r["subject"]["reference"]].append(r)

    def resolve(self, ref: str) -> dict | None:
        return self.by_ref.get(ref)

    def context(self, enc: dict) -> list[dict]:
        key = f"Encounter/{enc['id']}"
        named = [self.resolve(x["reference"]) for x in enc.get("reasonReference", [])]
        named += [self.resolve(d["condition"]["reference"]) for d in enc.get("diagnosis", [])]
        linked = self.by_enc.get(key, [])
        start = ts(enc["period"]["start"])
        prior = []
        for c in self.conds_by_pat[enc["subject"]["reference"]]:
            onset = ts(c.get("onsetDateTime") or c.get("recordedDate"))
            abate = ts(c.get("abatementDateTime"))
            if onset and onset < start and (abate is None or abate > start):
                prior.append(c)
        obs = sorted(
            [r for r in linked if r["resourceType"] == "Observation"],
            key=lambda o: o.get("effectiveDateTime", ""),
        )[:OBS_CAP]
        rest = [r for r in linked if r["resourceType"] != "Observation"]
        out, seen = [], set()
        for r in [
            *named,
            *[r for r in rest if r["resourceType"] == "Condition"],
            *prior,
            *rest,
            *obs,
        ]:
            if r is not None and id(r) not in seen:
                seen.add(id(r))
                out.append(r)
        return out


def rewrite(node, mapping, store):
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str) and not node["reference"].startswith("#"):
            t = store.resolve(node["reference"])
            if t is None or id(t) not in mapping:
                return None
            return {**node, "reference": mapping[id(t)]}
        out = {}
        for k, v in node.items():
            nv = rewrite(v, mapping, store)
            if nv is None or nv == [] or nv == {}:
                continue
            out[k] = nv
        return out
    if isinstance(node, list):
        out = [rewrite(v, mapping, store) for v in node]
        return [v for v in out if v is not None and v != {}]
    return node


def valid_alone(r: dict) -> str | None:
    from fhir.resources.R4B import get_fhir_model_class

    try:
        get_fhir_model_class(r["resourceType"]).model_validate(r)
        return None
    except Exception as exc:
        return str(exc).splitlines()[0] + " | " + " ".join(str(exc).splitlines()[1:3])


def fix_minimal(r: dict, log: list[str], name: str) -> dict:
    """FIXES: the smallest change that makes a clinosim resource valid R4, logged per resource."""
    done = []
    if r["resourceType"] == "MedicationAdministration" and isinstance(r.get("dosage"), dict):
        d = r["dosage"]
        if "timing" in d:
            d.pop("timing")
            done.append("dosage.timing removed (not in R4 MedicationAdministration)")
        if "doseAndRate" in d:
            dar = d.pop("doseAndRate")
            if "rateQuantity" not in d and dar and "rateQuantity" in dar[0]:
                d["rateQuantity"] = dar[0]["rateQuantity"]
            done.append("dosage.doseAndRate removed (R4 has dosage.rateQuantity)")
    if r["resourceType"] == "DiagnosticReport":
        if any("link" not in m for m in r.get("media", [])):
            r["media"] = [m for m in r["media"] if "link" in m]
            if not r["media"]:
                r.pop("media")
            done.append(
                "media entries left without link (their ImagingStudy is not in the case) removed"
            )
        code = r.get("code") or {}
        for c in code.get("coding", []):
            for k in ("code", "display"):
                if c.get(k) == "":
                    c.pop(k)
                    done.append(f"empty code.coding.{k} removed")
        if code.get("text") == "":
            code.pop("text")
            done.append("empty code.text removed")
    for item in done:
        log.append(f"{name}: fixed {r['resourceType']}/{r['id']}: {item}")
    return r


def build_case(name: str, store: Store, enc: dict, log: list[str]) -> list[dict]:
    pat = store.resolve(enc["subject"]["reference"])
    chosen = [enc, pat, *store.context(enc)]
    have = {id(r) for r in chosen}
    i = 0
    while i < len(chosen):
        for ref in iter_refs(chosen[i]):
            t = store.resolve(ref)
            if t is not None and id(t) not in have and t["resourceType"] in PARTY_TYPES:
                have.add(id(t))
                chosen.append(t)
        i += 1
    counters: dict[str, int] = {}
    mapping, newid = {}, {}
    for r in chosen:
        a = ABBR.get(r["resourceType"], r["resourceType"].lower())
        counters[a] = counters.get(a, 0) + 1
        nid = f"{name}-{a}" if (r is enc or r is pat) else f"{name}-{a}{counters[a]}"
        newid[id(r)] = nid
        mapping[id(r)] = f"{r['resourceType']}/{nid}"
    out = []
    for r in chosen:
        nr = rewrite(copy.deepcopy(r), mapping, store)
        nr["id"] = newid[id(r)]
        nr = fix_minimal(nr, log, name)
        err = valid_alone(nr)
        if err:
            if r is enc or r is pat:
                raise ValueError(f"{name}: focal/patient not valid R4: {err}")
            log.append(f"{name}: left out {r['resourceType']}/{r['id']}: {err[:200]}")
            continue
        out.append(nr)
    # a second pass: drop references to resources left out for being invalid
    kept = {f"{r['resourceType']}/{r['id']}" for r in out}

    def prune(node):
        if isinstance(node, dict):
            if isinstance(node.get("reference"), str) and node["reference"] not in kept:
                return None
            o = {k: v2 for k, v in node.items() if (v2 := prune(v)) not in (None, [], {})}
            return o
        if isinstance(node, list):
            return [v2 for v in node if (v2 := prune(v)) not in (None, {})]
        return node

    return [prune(r) for r in out]


def summarize(store: Store, enc: dict) -> dict:
    def code(r, field="code"):
        cc = r.get(field) or {}
        c = (cc.get("coding") or [{}])[0]
        return f"{c.get('code')} {(c.get('display') or cc.get('text') or '')[:50]}"

    key = f"Encounter/{enc['id']}"
    linked = store.by_enc.get(key, [])
    ctx = store.context(enc)
    start = ts(enc["period"]["start"])
    pat = store.resolve(enc["subject"]["reference"])
    return {
        "enc": enc["id"],
        "class": enc["class"]["code"],
        "start": enc["period"]["start"][:10],
        "age": (start - ts(pat["birthDate"])).days // 365 if pat.get("birthDate") else None,
        "type": code({"code": (enc.get("type") or [{}])[0]}),
        "reason": [code({"code": x}) for x in enc.get("reasonCode", [])],
        "dx": [
            code(store.resolve(d["condition"]["reference"]) or {})
            + f" [{(d.get('use') or {}).get('coding', [{}])[0].get('code')}]"
            + f" onset={(store.resolve(d['condition']['reference']) or {}).get('onsetDateTime', '')[:10]}"
            for d in enc.get("diagnosis", [])
        ],
        "procs": [code(r) for r in linked if r["resourceType"] == "Procedure"],
        "meds": sorted(
            {
                code(r, "medicationCodeableConcept")
                for r in linked
                if r["resourceType"] in ("MedicationRequest", "MedicationAdministration")
            }
        )[:8],
        "sr": sorted({code(r) for r in linked if r["resourceType"] == "ServiceRequest"})[:8],
        "imm": [code(r, "vaccineCode") for r in linked if r["resourceType"] == "Immunization"],
        "obs": len([r for r in linked if r["resourceType"] == "Observation"]),
        "prior": sorted(
            {
                code(c)
                for c in ctx
                if c["resourceType"] == "Condition"
                and ts(c.get("onsetDateTime") or c.get("recordedDate"))
                and ts(c.get("onsetDateTime") or c.get("recordedDate")) < start
            }
        ),
        "los_h": round((ts(enc["period"].get("end")) - start).total_seconds() / 3600, 1)
        if enc["period"].get("end")
        else None,
    }


def main():
    cmd, src = sys.argv[1], Path(sys.argv[2])
    store = Store(src)
    if cmd == "summarize":
        for e in store.by_type["Encounter"]:
            print(json.dumps(summarize(store, e), ensure_ascii=False))
        return
    picks = tomllib.loads(Path(sys.argv[3]).read_text())["pick"]
    start_no = int(sys.argv[4])
    out, log = [], []
    for i, p in enumerate(picks):
        name = f"rs-{start_no + i:03d}"
        enc = store.resolve(f"Encounter/{p['id']}")
        resources = build_case(name, store, enc, log)
        fname = write_case(name, resources)
        exp = {k: v for k, v in p.items() if k not in ("id",)}
        exp.setdefault("flags", [])
        out.append({"file": fname, "focal": f"Encounter/{name}-enc", **exp, "origin": "clinosim"})
    (HERE / "expected_clinosim.toml").write_text("".join(toml_case(c) + "\n" for c in out))
    (HERE / "clinosim_fixes.log").write_text("\n".join(log) + "\n")
    print(
        f"{len(out)} clinosim cases; {sum('left out' in x for x in log)} resources left out as invalid R4, {sum('fixed' in x for x in log)} fixes"
    )


if __name__ == "__main__":
    main()
