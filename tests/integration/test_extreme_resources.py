"""Property: valid but extreme resources (dates at 0001 and 9999, huge and tiny numbers,
NUL, combining characters, 10 kB values in every string) never stop mapping for anyone
else. Each example imports them beside an ordinary patient, on both backends: the
ordinary encounter is always placed, nothing stays pending, and every extreme Encounter
and QuestionnaireResponse is either mapped or isolated with an explained record."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from integration.ingest.pipeline import IngestPipeline
from integration.journey.update import pending_count
from integration.store.schema import job_records
from mappings.rulepack import RulePack
from tests.conftest import encounter, patient, write_ndjson

edge_dates = st.sampled_from(
    [
        "0001",
        "0001-01",
        "0001-01-01",
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:00:00+14:00",
        "9999",
        "9999-12",
        "9999-12-31",
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:59:59.999999999-12:00",
        "2024-02-29T23:59:60Z",
    ]
)
texts = st.one_of(
    st.sampled_from(["a\x00b", "\x00", "e\u0301\u0301\u0301", "\u202e\ufeff", "\U0001f600"]),
    # A long value stands in the example as its length (a readable failure report),
    # and is built in the test.
    st.integers(1, 10_240),
    st.text(min_size=1, max_size=20).filter(lambda s: s.strip()),
)
numbers = st.one_of(
    st.sampled_from([0, -1, 2**31, 2**63 - 1, -(2**63), 10**30]),
    st.floats(allow_nan=False, allow_infinity=False),
)


def extreme_patient(pid: str, name: str, birth: str) -> dict[str, Any]:
    return patient(
        pid,
        name=[{"family": name, "given": [name], "text": name}],
        birthDate=birth[:10] if len(birth) >= 10 else birth,
        identifier=[{"system": f"urn:sys:{name[:50]}", "value": name}],
    )


def extreme_encounter(eid: str, pid: str, start: str, end: str, label: str) -> dict[str, Any]:
    return encounter(
        eid,
        pid,
        "EMER",
        period={"start": start, "end": end},
        type=[{"text": label, "coding": [{"system": f"urn:{label[:30]}", "code": label}]}],
        reasonCode=[{"text": label}],
    )


def extreme_response(rid: str, pid: str, when: str, label: str, number: Any) -> dict[str, Any]:
    return {
        "resourceType": "QuestionnaireResponse",
        "id": rid,
        "status": "completed",
        "questionnaire": f"http://example.org/q/{label[:20]}",
        "subject": {"reference": f"Patient/{pid}"},
        "authored": when,
        "item": [
            {"linkId": label, "text": label, "answer": [{"valueString": label}]},
            {
                "linkId": "n",
                "answer": [
                    {"valueDecimal": number}
                    if isinstance(number, float)
                    else {"valueInteger": max(-(2**31), min(number, 2**31 - 1))}
                ],
            },
        ],
    }


examples = st.lists(st.tuples(edge_dates, edge_dates, texts, numbers), min_size=1, max_size=4)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(examples)
def test_extreme_resources_never_stop_mapping_for_others(
    pack: RulePack, engine: Engine, cases: list[tuple[str, str, str, Any]]
) -> None:
    """The examples share one store per backend (ids repeat: later ones are new versions)."""
    resources: list[dict[str, Any]] = []
    for n, (start, end, text, number) in enumerate(cases):
        label = "x" * text if isinstance(text, int) else text
        resources += [
            extreme_patient(f"x{n}", label, start),
            extreme_encounter(f"xe{n}", f"x{n}", start, end, label),
            extreme_response(f"xq{n}", f"x{n}", end, label, number),
        ]
    ordinary = [patient("ordinary"), encounter("ordinary-visit", "ordinary", "EMER")]
    with tempfile.TemporaryDirectory() as folder:
        # Extreme first, so an ordinary resource shares their batches.
        path = write_ndjson(Path(folder) / "f.ndjson", *resources, *ordinary)
        summary = IngestPipeline(engine, pack, "extreme", 1 << 20, batch_size=3).run([path])
    assert pending_count(engine) == 0
    with engine.connect() as conn:
        records = {
            row.resource_id: row
            for row in conn.execute(
                select(job_records.c.resource_id, job_records.c.job, job_records.c.rule_id)
            )
        }
    assert records["ordinary-visit"].job == "diagnose"
    rejected = {problem.resource_id for problem in summary.problems}
    for resource in resources:
        if resource["resourceType"] != "Patient" and resource["id"] not in rejected:
            assert resource["id"] in records, f"{resource['id']} neither mapped nor isolated"
