"""The clinical review set: does the journey place each record where a clinician would?

`tests/review_set/` holds FHIR inputs (synthea and clinosim output, hand-written
resources in the shapes real systems send) and, in `expected.toml`, the job a
clinical reviewer expects for each focal resource with a one-line rationale,
written before the rules were changed and without reading them. The whole set is
imported as a source would send it and each focal resource's record is compared.

Agreement is counted over the cases not marked ambiguous and must reach 90%. Safety
is not traded for agreement: every expected self-harm flag must be raised, and no
record expected out of the journey may stay in it.
"""

from __future__ import annotations

import tomllib
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select

from integration.store.schema import job_records
from tests.conftest import REVIEW_SET_REPORT, ImportFn

REVIEW_SET = Path(__file__).resolve().parent.parent / "review_set"
REQUIRED_AGREEMENT = 0.90


@dataclass(frozen=True, slots=True)
class Verdict:
    case: dict[str, Any]
    got: str
    flags: tuple[str, ...]
    rule: str
    agrees: bool


def expected_cases() -> list[dict[str, Any]]:
    with open(REVIEW_SET / "expected.toml", "rb") as handle:
        cases: list[dict[str, Any]] = tomllib.load(handle)["case"]
    return cases


def placed(record: dict[str, Any] | None) -> str:
    """What the journey shows for a focal resource, in the review set's words."""
    if record is None or record["excluded"]:
        return "excluded"
    if "upcoming" in record["flags"]:
        return "upcoming"
    return str(record["job"])


def judge(engine: Engine) -> list[Verdict]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                job_records.c.resource_type,
                job_records.c.resource_id,
                job_records.c.job,
                job_records.c.flags,
                job_records.c.excluded,
                job_records.c.rule_id,
            )
        ).all()
    records = {
        f"{row.resource_type}/{row.resource_id}": {
            "job": row.job,
            "flags": orjson.loads(row.flags),
            "excluded": row.excluded,
            "rule": row.rule_id,
        }
        for row in rows
    }
    verdicts = []
    for case in expected_cases():
        record = records.get(case["focal"])
        got = placed(record)
        verdicts.append(
            Verdict(
                case,
                got,
                tuple(record["flags"]) if record else (),
                record["rule"] if record else "(no record)",
                got == case["job"],
            )
        )
    return verdicts


def report(verdicts: list[Verdict]) -> str:
    counted = [v for v in verdicts if not v.case.get("ambiguous")]
    lines = [
        f"Review set: {sum(v.agrees for v in counted)}/{len(counted)} agree "
        f"({sum(v.agrees for v in counted) / len(counted):.1%}); "
        f"{len(verdicts) - len(counted)} ambiguous cases reported, not counted"
    ]
    by: dict[str, list[Verdict]] = defaultdict(list)
    for verdict in counted:
        by[f"origin {verdict.case['origin']}"].append(verdict)
        by[f"focal {verdict.case['focal'].split('/')[0]}"].append(verdict)
        by[f"expected {verdict.case['job']}"].append(verdict)
    for key in sorted(by):
        group = by[key]
        lines.append(f"  {key}: {sum(v.agrees for v in group)}/{len(group)}")
    confusion = Counter((v.case["job"], v.got) for v in counted if not v.agrees)
    if confusion:
        lines.append(
            "  disagreements (expected -> got): "
            + ", ".join(f"{want}->{got} {n}" for (want, got), n in confusion.most_common())
        )
    for verdict in verdicts:
        if not verdict.agrees:
            mark = " (ambiguous)" if verdict.case.get("ambiguous") else ""
            lines.append(
                f"  {verdict.case['file']} {verdict.case['focal']}: expected "
                f"{verdict.case['job']}, got {verdict.got} by {verdict.rule}{mark}"
                f" -- {verdict.case['rationale']}"
            )
    return "\n".join(lines)


@pytest.mark.slow
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_the_journey_agrees_with_the_clinical_review_set(
    engine: Engine, import_files: ImportFn, record_property: Callable[[str, object], None]
) -> None:
    summary = import_files(REVIEW_SET / "cases", source="review", max_bytes=16 << 20)
    assert summary.total("quarantined") == 0, [str(p) for p in summary.problems]
    verdicts = judge(engine)
    text = report(verdicts)
    # Printed at the end of every run, pass or fail, also from an xdist worker
    # (tests/conftest.py: pytest_terminal_summary).
    record_property(REVIEW_SET_REPORT, text)
    counted = [v for v in verdicts if not v.case.get("ambiguous")]
    agreement = sum(v.agrees for v in counted) / len(counted)

    # Safety first, whatever the agreement.
    missed_flags = [
        v.case["file"]
        for v in verdicts
        if "self_harm_risk" in v.case.get("flags", []) and "self_harm_risk" not in v.flags
    ]
    assert missed_flags == [], "self-harm flags not raised"
    kept_withdrawn = [
        v.case["file"] for v in verdicts if v.case["job"] == "excluded" and v.got != "excluded"
    ]
    assert kept_withdrawn == [], "records expected out of the journey are in it"
    assert agreement >= REQUIRED_AGREEMENT, text
