"""Every statement a push runs is answered from an index on its whole key, on SQLite.

SQLite has no statistics here (nothing runs ANALYZE), so its planner guesses: an OR
of (type AND id IN ...) groups, a lookup sorted in a primary key's order, or an index
that leaves a column in the table each made it read every row of the source through
an index on `source` alone, and a push got slower as the store grew. The plans are
read with EXPLAIN QUERY PLAN for the statements of a second push (the first one
prepares what it looks up: held Patients, evidence naming Encounters).
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import event, select

from integration.config import Settings
from integration.journey.rule_packs import store_pack
from integration.push.service import PushService
from integration.store.engine import open_store
from integration.store.schema import current_resources, job_records
from mappings.rulepack import RulePack
from tests.conftest import encounter, patient

# An index searched on the source alone, or on the source and a type: every row of the
# source (of that type) is read.
_SOURCE_WIDE = re.compile(r"\((source=\?|source=\? AND \w+_type=\?)\)$")


def _bundle(n: int) -> dict[str, Any]:
    """Patients, their Encounters, and a Condition and an Observation naming each
    Encounter: every kind of lookup a push makes, mixed in one transaction."""
    entries: list[dict[str, Any]] = []
    for i in range(3):
        pid, eid = f"p{n}-{i}", f"e{n}-{i}"
        entries += [
            patient(pid),
            encounter(eid, pid, klass="AMB"),
            {
                "resourceType": "Condition",
                "id": f"c{n}-{i}",
                "subject": {"reference": f"Patient/{pid}"},
                "encounter": {"reference": f"Encounter/{eid}"},
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "35489007"}]},
            },
            {
                "resourceType": "Observation",
                "id": f"o{n}-{i}",
                "status": "final",
                "subject": {"reference": f"Patient/{pid}"},
                "encounter": {"reference": f"Encounter/{eid}"},
                "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
                "valueQuantity": {"value": 12},
            },
        ]
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": resource,
                "request": {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"},
            }
            for resource in entries
        ]
        # Repeated creates are looked up by content.
        + [
            {
                "resource": patient(f"new{n}"),
                "request": {"method": "POST", "url": "Patient"},
            }
        ],
    }


def test_no_statement_of_a_push_reads_the_whole_source(pack: RulePack, tmp_path: Path) -> None:
    database = tmp_path / "journey.db"
    engine = open_store(f"sqlite:///{database}")
    push = PushService(engine, pack, Settings(max_resource_bytes=1 << 20))
    _kind, answers = push.process_bundle("ehr", _bundle(1))
    assert all(getattr(answer, "status", None) in (200, 201) for answer in answers), answers
    statements: dict[str, Any] = {}

    @event.listens_for(engine, "before_cursor_execute")
    def seen(_conn: Any, _cursor: Any, statement: str, params: Any, _ctx: Any, many: bool) -> None:
        if statement.lstrip().split(" ", 1)[0].upper() in ("SELECT", "UPDATE", "DELETE", "INSERT"):
            statements.setdefault(statement, params[0] if many else params)

    # Again with new resources, and once more the same (held: compared, not stored).
    push.process_bundle("ehr", _bundle(2))
    push.process_bundle("ehr", _bundle(2))
    engine.dispose()
    assert len(statements) > 30
    wide: list[str] = []
    with sqlite3.connect(database) as raw:
        for statement, params in statements.items():
            plan = [row[3] for row in raw.execute(f"EXPLAIN QUERY PLAN {statement}", params)]
            for step in plan:
                scans = step.startswith("SCAN ") and not step.startswith("SCAN CONSTANT ROW")
                if scans or _SOURCE_WIDE.search(step):
                    wide.append(f"{step}\n    in {' '.join(statement.split())[:300]}")
    assert not wide, "\n".join(wide)


def test_a_transaction_bundle_is_stored_and_mapped_in_one_transaction(tmp_path: Path) -> None:
    """Mapping what a push wrote took six more transactions, each taking the derive lock
    and reading back the rows the push had just written (issue 21)."""
    engine = open_store(f"sqlite:///{tmp_path / 'journey.db'}")
    # As `journey serve` starts: the store names its pack.
    push = PushService(engine, store_pack(engine), Settings(max_resource_bytes=1 << 20))
    commits: list[int] = []
    event.listen(engine, "commit", lambda _conn: commits.append(1))
    _kind, answers = push.process_bundle("ehr", _bundle(1))
    assert [getattr(answer, "status", None) for answer in answers].count(201) == 13
    assert len(commits) == 1
    with engine.connect() as conn:
        derived = conn.execute(
            select(job_records.c.resource_id).where(job_records.c.resource_type == "Encounter")
        ).scalars()
        assert sorted(derived) == ["e1-0", "e1-1", "e1-2"]
        assert not conn.execute(
            select(current_resources.c.resource_id).where(current_resources.c.needs_derive)
        ).first()
    engine.dispose()
