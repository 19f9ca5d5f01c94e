"""Keep each person's events seen by several sources joined: after their records or
their people change, the records that restate another are marked so (`event_of`)
and the shown record lists them (`joined`), by `mappings.events`. Recomputed whole
per person, so a join follows the evidence (a record changed or withdrawn, a
Patient linked or split off) and is never across people; only changed rows are
written."""

from __future__ import annotations

from collections.abc import Iterable

import orjson
from sqlalchemy import Connection

from integration.store import job_records as records_store
from integration.store import people as people_store
from mappings.events import same_events


def reconcile_multi_source(conn: Connection, person_ids: Iterable[str]) -> None:
    """Reconcile these people after their records were written: only people with
    Patients from two sources or more can have an event two sources saw (a person whose
    Patients change goes through `reconcile_people`)."""
    members = people_store.members_of(conn, sorted(set(person_ids)))
    reconcile_people(
        conn,
        {person for person, keys in members.items() if len({source for source, _ in keys}) > 1},
    )


def reconcile_people(conn: Connection, person_ids: Iterable[str]) -> None:
    stored = records_store.event_records_of_people(conn, sorted(set(person_ids)))
    by_person: dict[str, list[records_store.StoredEvent]] = {}
    for item in stored:
        by_person.setdefault(item.person_id, []).append(item)
    changes: list[tuple[str, str | None, str]] = []
    for items in by_person.values():
        joins = same_events([item.record for item in items])
        restates = {j.record.id: shown for shown, joined in joins.items() for j in joined}
        for item in items:
            joined = joins.get(item.record.id, [])
            joined_json = orjson.dumps(
                [
                    {
                        "source": j.record.source,
                        "resource_type": j.record.resource_type,
                        "resource_id": j.record.resource_id,
                        "why": j.why,
                    }
                    for j in joined
                ]
            ).decode()
            event_of = restates.get(item.record.id)
            if (event_of, joined_json) != (item.event_of, item.joined):
                changes.append((item.record.id, event_of, joined_json))
    records_store.set_events(conn, changes)
