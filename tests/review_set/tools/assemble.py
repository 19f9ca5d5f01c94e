"""Concatenate the per-origin expected fragments into expected.toml (sorted by file)."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import HERE, ROOT, toml_case

HEADER = """# Clinical review set for fhir-journey: one [[case]] per file in cases/.
# job: diagnose | treat | keep_well | unclassified | excluded | upcoming
# flags: subset of self_harm_risk, incomplete, superseded, upcoming
# ambiguous = true: reasonable clinicians could disagree; report, do not count against agreement.
# See README.md for how the cases were chosen and judged.

"""

cases = []
for frag in ("expected_handwritten.toml", "expected_synthea.toml", "expected_clinosim.toml"):
    p = HERE / frag
    if p.exists():
        cases += tomllib.loads(p.read_text())["case"]
cases.sort(key=lambda c: c["file"])
(ROOT / "expected.toml").write_text(HEADER + "\n".join(toml_case(c) for c in cases))
print(len(cases), "cases in expected.toml")
