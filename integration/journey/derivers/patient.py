"""Patients: each is linked into a person (identity); no job record."""

from __future__ import annotations

from sqlalchemy import Connection

from integration.clock import utc_now
from integration.journey.derivers.base import CurrentResource, JourneyUpdate, ResourceKey
from integration.journey.identity import SourcePatient, link_patients
from mappings.rulepack import RulePack


def derive(
    conn: Connection, batch: list[CurrentResource], pack: RulePack, summary: JourneyUpdate
) -> list[ResourceKey]:
    link_patients(
        conn,
        [SourcePatient(p.source, p.resource_id, p.content) for p in batch],
        utc_now(),
        pack.identity,
    )
    summary.people_linked += len(batch)
    return []
