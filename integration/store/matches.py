"""Verdicts on pairs of source Patients (`patient_matches`): the statements identity
runs and the review queue reads. Which pairs are one person is decided in
`integration.journey.identity` and `integration.journey.matching`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, delete, or_, select

from integration.store.keys import in_keys
from integration.store.schema import (
    patient_identifiers,
    patient_match_history,
    patient_matches,
    person_links,
)
from integration.store.upsert import upsert

# (source, Patient id)
PatientKey = tuple[str, str]
AUTOMATIC = "automatic"
_A = (patient_matches.c.a_source, patient_matches.c.a_patient)
_B = (patient_matches.c.b_source, patient_matches.c.b_patient)


@dataclass(frozen=True, slots=True)
class PairVerdict:
    a: PatientKey
    b: PatientKey
    outcome: str
    rule: str
    reason: str
    fields: dict[str, str]
    decided_by: str
    decided_at: str
    score: float | None = None


def ordered(x: PatientKey, y: PatientKey) -> tuple[PatientKey, PatientKey]:
    """A pair in its stored order."""
    return (x, y) if x <= y else (y, x)


def holders(
    conn: Connection, identifiers: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], list[PatientKey]]:
    """(system, value) -> the source Patients carrying it."""
    found: dict[tuple[str, str], list[PatientKey]] = {}
    if not identifiers:
        return found
    rows = conn.execute(
        select(patient_identifiers).where(
            in_keys((patient_identifiers.c.system, patient_identifiers.c.value), identifiers)
        )
    )
    for row in rows:
        found.setdefault((row.system, row.value), []).append((row.source, row.patient_id))
    return found


def verdicts_touching(conn: Connection, keys: Sequence[PatientKey]) -> list[PairVerdict]:
    """Every stored verdict on a pair with one of these Patients in it."""
    if not keys:
        return []
    rows = conn.execute(
        select(patient_matches).where(or_(in_keys(_A, keys), in_keys(_B, keys)))
    ).all()
    return [_verdict(row._mapping) for row in rows]


def forget_automatic(conn: Connection, keys: Sequence[PatientKey]) -> None:
    """Drop the automatic verdicts on pairs with these Patients (they are judged again);
    a reviewer's decisions stay."""
    if keys:
        conn.execute(
            delete(patient_matches).where(
                patient_matches.c.decided_by == AUTOMATIC,
                or_(in_keys(_A, keys), in_keys(_B, keys)),
            )
        )


def write_verdicts(conn: Connection, verdicts: Sequence[PairVerdict]) -> None:
    upsert(
        conn,
        patient_matches,
        [
            {**_decision_row(v), "fields": orjson.dumps(v.fields).decode(), "score": v.score}
            for v in verdicts
        ],
        keys=("a_source", "a_patient", "b_source", "b_patient"),
        update=("outcome", "rule", "reason", "fields", "decided_by", "decided_at", "score"),
    )


def _decision_row(v: PairVerdict) -> dict[str, Any]:
    return {
        "a_source": v.a[0],
        "a_patient": v.a[1],
        "b_source": v.b[0],
        "b_patient": v.b[1],
        "outcome": v.outcome,
        "rule": v.rule,
        "reason": v.reason,
        "decided_by": v.decided_by,
        "decided_at": v.decided_at,
    }


def record_history(conn: Connection, verdicts: Sequence[PairVerdict]) -> None:
    """Append these decisions to the pairs' history."""
    if verdicts:
        conn.execute(
            patient_match_history.insert(),
            [_decision_row(v) for v in verdicts],
        )


def history_of(conn: Connection, keys: Sequence[PatientKey]) -> list[dict[str, Any]]:
    """Every decision on a pair with one of these Patients in it, oldest first."""
    if not keys:
        return []
    h = patient_match_history.c
    rows = conn.execute(
        select(patient_match_history)
        .where(
            or_(in_keys((h.a_source, h.a_patient), keys), in_keys((h.b_source, h.b_patient), keys))
        )
        .order_by(h.id)
    ).all()
    return [
        {
            "a": {"source": row.a_source, "patient_id": row.a_patient},
            "b": {"source": row.b_source, "patient_id": row.b_patient},
            "outcome": row.outcome,
            "rule": row.rule,
            "reason": row.reason,
            "decided_by": row.decided_by,
            "decided_at": row.decided_at,
        }
        for row in rows
    ]


def possible_matches(conn: Connection, limit: int) -> list[PairVerdict]:
    """The review queue: pairs waiting for a reviewer, oldest first."""
    rows = conn.execute(
        select(patient_matches)
        .where(patient_matches.c.outcome == "possible")
        .order_by(patient_matches.c.decided_at, *_A, *_B)
        .limit(limit)
    ).all()
    return [_verdict(row._mapping) for row in rows]


def _verdict(row: Any) -> PairVerdict:
    return PairVerdict(
        (row["a_source"], row["a_patient"]),
        (row["b_source"], row["b_patient"]),
        row["outcome"],
        row["rule"],
        row["reason"],
        orjson.loads(row["fields"]),
        row["decided_by"],
        row["decided_at"],
        row["score"],
    )


def review_queue(conn: Connection, limit: int) -> list[dict[str, Any]]:
    """The review queue with both Patients side by side: source, id, person, name and
    birth date as linked."""
    waiting = possible_matches(conn, limit)
    keys = sorted({key for v in waiting for key in (v.a, v.b)})
    shown = (
        {
            (row.source, row.patient_id): row
            for row in conn.execute(
                select(person_links).where(
                    in_keys((person_links.c.source, person_links.c.patient_id), keys)
                )
            )
        }
        if keys
        else {}
    )

    def side(key: PatientKey) -> dict[str, Any]:
        row = shown.get(key)
        return {
            "source": key[0],
            "patient_id": key[1],
            "person_id": row.person_id if row else None,
            "name": row.display_name if row else None,
            "birth_date": row.birth_date if row else None,
        }

    return [
        {
            "a": side(v.a),
            "b": side(v.b),
            "rule": v.rule,
            "reason": v.reason,
            "fields": v.fields,
            "score": v.score,
            "decided_at": v.decided_at,
        }
        for v in waiting
    ]
