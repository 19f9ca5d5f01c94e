"""Consistency checks for the review set: valid R4B bundles, unique ids, resolving refs,
QR scores recomputed from answers agree with expected.toml."""

from __future__ import annotations

import json
import sys
import tomllib
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CASES, ROOT, check_refs, validate_bundle

LA = {"LA6568-5": 0, "LA6569-3": 1, "LA6570-1": 2, "LA6571-9": 3}
TOTALS = {"44261-6", "70274-6", "55758-7", "/44261-6", "/70274-6", "/55758-7"}
JOBS = {"diagnose", "treat", "keep_well", "unclassified", "excluded", "upcoming"}
FLAGS = {"self_harm_risk", "incomplete", "superseded", "upcoming"}


def main(expected_path: Path) -> None:
    exp = tomllib.loads(expected_path.read_text())["case"]
    assert len(exp) >= 200, f"the issue asks for at least 200 cases, found {len(exp)}"
    ids = Counter()
    files = {c["file"] for c in exp}
    assert len(files) == len(exp), "duplicate file in expected"
    on_disk = {p.name for p in CASES.glob("*.json")}
    assert files == on_disk, files ^ on_disk
    for c in exp:
        b = json.loads((CASES / c["file"]).read_text())
        assert b["type"] == "collection"
        validate_bundle(b)
        check_refs(b)
        for e in b["entry"]:
            r = e["resource"]
            ids[f"{r['resourceType']}/{r['id']}"] += 1
        focal = b["entry"][0]["resource"]
        assert c["focal"] == f"{focal['resourceType']}/{focal['id']}", c["file"]
        assert c["job"] in JOBS, c
        assert c["rationale"].strip(), c["file"]
        assert set(c["flags"]) <= FLAGS, c
        assert c["origin"] in {"synthea", "clinosim", "hand-written"}
        if focal["resourceType"] == "QuestionnaireResponse" and "score" in c:
            vals = [
                LA[i["answer"][0]["valueCoding"]["code"]]
                for i in focal["item"]
                if i.get("answer")
                and "valueCoding" in i["answer"][0]
                and i["answer"][0]["valueCoding"]["code"] in LA
            ]
            assert sum(vals) == c["score"], (c["file"], sum(vals), c["score"])
    dup = [k for k, v in ids.items() if v > 1]
    assert not dup, dup[:10]
    print(f"ok: {len(exp)} cases, {sum(ids.values())} resources, ids unique")
    print(Counter(c["origin"] for c in exp))
    print(Counter(c["job"] for c in exp))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "expected.toml")
