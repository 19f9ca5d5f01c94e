"""Claims and ExplanationOfBenefits: one job record each, read with the records of the
Encounters they bill (derived before them), loaded set-based per batch."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import Connection

from integration.journey.derivers.base import (
    CurrentResource,
    JourneyUpdate,
    ResourceKey,
    write_records,
)
from integration.store.job_records import records_of
from mappings.claims import billed_encounter_ids, map_claim
from mappings.failed import describe_failure
from mappings.model import JobRecord
from mappings.rulepack import RulePack


def derive(
    conn: Connection, batch: list[CurrentResource], pack: RulePack, summary: JourneyUpdate
) -> list[ResourceKey]:
    wanted: dict[str, set[str]] = defaultdict(set)
    for claim in batch:
        wanted[claim.source].update(billed_encounter_ids(claim.content))
    billed = {source: records_of(conn, source, "Encounter", ids) for source, ids in wanted.items()}
    records: list[JobRecord] = []
    failed: list[tuple[CurrentResource, str]] = []
    for claim in batch:
        try:
            records.append(map_claim(claim.content, claim.ref, pack, billed.get(claim.source)))
        except Exception as exc:  # this claim only: the others map on
            failed.append((claim, describe_failure(exc)))
    write_records(conn, batch, records, failed, pack, summary)
    return []
