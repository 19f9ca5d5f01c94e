"""Patients' folded demographics and blocking keys: what probabilistic matching
reads. Which pairs are one person is decided in `integration.journey.identity`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from sqlalchemy import Connection, delete, func, select, update

from integration.store.keys import in_keys
from integration.store.schema import (
    name_counts,
    patient_blocking_keys,
    patient_demographics,
    store_counters,
)
from integration.store.upsert import execute_many, insert_statement
from mappings.demographics import Demographics

PatientKey = tuple[str, str]
_D = patient_demographics.c
_K = patient_blocking_keys.c
_C = store_counters.c
_N = name_counts.c
PATIENTS = "patients_with_demographics"


def replace_demographics(
    conn: Connection,
    found: Mapping[PatientKey, Demographics],
    blocking: Mapping[PatientKey, Sequence[str]],
) -> None:
    """These Patients' demographics and blocking keys, as they are now."""
    keys = list(found)
    names: Counter[tuple[str, str]] = Counter()
    for row in conn.execute(
        select(_D.family, _D.given).where(in_keys((_D.source, _D.patient_id), keys))
    ):
        names[("family", row.family)] -= 1
        names[("given", row.given)] -= 1
    for d in found.values():
        names[("family", d.family[:200])] += 1
        names[("given", d.given[:200])] += 1
    _count_names(conn, names)
    removed = conn.execute(
        delete(patient_demographics).where(in_keys((_D.source, _D.patient_id), keys))
    ).rowcount
    conn.execute(delete(patient_blocking_keys).where(in_keys((_K.source, _K.patient_id), keys)))
    execute_many(
        conn,
        patient_demographics.insert(),
        [
            {
                "source": key[0],
                "patient_id": key[1],
                "family": d.family[:200],
                "given": d.given[:200],
                "birth_date": d.birth_date,
                "gender": d.gender[:20],
                "line": d.line,
                "postcode": d.postcode[:20],
                "city": d.city[:200],
                "phone": d.phone,
                "email": d.email[:320],
            }
            for key, d in found.items()
        ],
    )
    _count_patients(conn, len(found) - max(removed, 0))
    execute_many(
        conn,
        patient_blocking_keys.insert(),
        [
            {"key": k[:300], "source": key[0], "patient_id": key[1]}
            for key, ks in blocking.items()
            for k in dict.fromkeys(ks)
        ],
    )


def demographics_of(conn: Connection, keys: Sequence[PatientKey]) -> dict[PatientKey, Demographics]:
    if not keys:
        return {}
    return {
        (row.source, row.patient_id): Demographics(
            row.family,
            row.given,
            row.birth_date,
            row.gender,
            row.line,
            row.postcode,
            row.city,
            row.phone,
            row.email,
        )
        for row in conn.execute(
            select(patient_demographics).where(in_keys((_D.source, _D.patient_id), keys))
        )
    }


def holders_of_keys(
    conn: Connection, blocking_keys: Sequence[str], most: int, same_cost: bool = False
) -> dict[str, list[PatientKey]]:
    """Blocking key -> the Patients holding it, for keys held by at most `most` (a key
    that common says nothing). With `same_cost`, the holders are asked for also when no
    key is held (a $match must not take longer for someone in the store than for
    no one)."""
    wanted = sorted(set(blocking_keys))
    if not wanted:
        return {}
    counts = conn.execute(
        select(_K.key, func.count()).where(_K.key.in_(wanted)).group_by(_K.key)
    ).all()
    usable = [key for key, n in counts if n <= most]
    found: dict[str, list[PatientKey]] = {}
    if usable or same_cost:
        for row in conn.execute(select(patient_blocking_keys).where(_K.key.in_(usable))):
            found.setdefault(row.key, []).append((row.source, row.patient_id))
    return found


def name_counts_of(conn: Connection, field: str, values: Sequence[str]) -> dict[str, int]:
    """How many Patients carry each folded family (or given) name: running counts, not
    a count of rows."""
    wanted = sorted({v for v in values if v})
    if not wanted:
        return {}
    return {
        value: int(count)
        for value, count in conn.execute(
            select(_N.value, _N.count).where(_N.field == field, _N.value.in_(wanted))
        )
    }


def _count_names(conn: Connection, changes: Counter[tuple[str, str]]) -> None:
    rows = [
        {"field": field, "value": value, "count": delta}
        for (field, value), delta in sorted(changes.items())
        if value and delta
    ]
    if rows:
        stmt = insert_statement(conn, name_counts)
        stmt = stmt.on_conflict_do_update(
            index_elements=["field", "value"], set_={"count": _N.count + stmt.excluded.count}
        )
        execute_many(conn, stmt, rows)


def patients_known(conn: Connection) -> int:
    """How many Patients have demographics: a running count, not a count of rows."""
    value = conn.execute(select(_C.value).where(_C.name == PATIENTS)).scalar_one_or_none()
    if value is None:  # a store from before the counter: counted once
        value = int(
            conn.execute(select(func.count()).select_from(patient_demographics)).scalar_one()
        )
        conn.execute(store_counters.insert().values(name=PATIENTS, value=value))
    return int(value)


def _count_patients(conn: Connection, delta: int) -> None:
    patients_known(conn)  # the counter exists
    if delta:
        conn.execute(
            update(store_counters).where(_C.name == PATIENTS).values(value=_C.value + delta)
        )
