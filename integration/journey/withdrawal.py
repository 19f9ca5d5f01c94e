"""What a resource deleted by its source takes out of the journey, by what it became
there (`integration.derived_types`):

- job records leave the journey as tombstones (kept, excluded, with when and why),
  each told to the feed as removed; their people's events join again and their
  episodes are recomputed; a patient's other responses are mapped again without it
  (a repeat screen's job depends on the earlier ones);
- a Patient leaves its person (`identity.withdraw_patients`; a person left with no
  Patient is retired);
- evidence no longer counts for the Encounters it named or that named it (they are
  derived again);
- a privacy Consent withholds no one any more.

Run by the journey update on the tombstones it finds on the queue, in its
transaction (which holds the derive lock); running it again changes nothing.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import Connection

from integration.clock import utc_now
from integration.derived_types import DERIVED, Becomes
from integration.journey.derivers.base import CurrentResource, JourneyUpdate, ResourceKey
from integration.journey.events import reconcile_multi_source
from integration.journey.identity import (
    REMOVED_DELETED,
    REMOVED_LEFT_ROSTER,
    withdraw_patients,
)
from integration.store import consents as consents_store
from integration.store import episodes as episodes_store
from integration.store.derivation import flag_for_derivation, flag_of_subjects
from integration.store.job_records import DELETED_BY_SOURCE, tombstone_records
from integration.store.resource_links import (
    encounters_named_by,
    encounters_naming,
    replace_encounter_conditions,
    replace_encounter_evidence,
)
from mappings.events import EVENT_TYPES
from mappings.rulepack import RulePack

_BECOMES = {entry.resource_type: entry.becomes for entry in DERIVED}
# Mapped together per patient: one withdrawn changes the others' records.
_MAPPED_PER_PATIENT = ("QuestionnaireResponse", "Observation")


def withdraw(
    conn: Connection,
    deleted: list[CurrentResource],
    pack: RulePack,
    _summary: JourneyUpdate,
    reason: str = DELETED_BY_SOURCE,
) -> list[ResourceKey]:
    """Take these deleted resources (one type or several) out of the journey (`reason`:
    why their records left it); returns the resources put back on the queue because
    of it (a scoped run derives them too)."""
    now = utc_now()
    by_type: dict[str, list[ResourceKey]] = defaultdict(list)
    for resource in deleted:
        by_type[resource.resource_type].append(resource.key)
    flagged: list[ResourceKey] = []
    for resource_type, keys in by_type.items():
        becomes = _BECOMES.get(resource_type)
        pairs = [(source, resource_id) for source, _, resource_id in keys]
        if becomes is Becomes.PERSON:
            why = REMOVED_DELETED if reason == DELETED_BY_SOURCE else REMOVED_LEFT_ROSTER
            withdraw_patients(conn, pairs, now, pack.identity, why)
        elif becomes is Becomes.DIRECTIVE:
            consents_store.forget(conn, pairs)
        if becomes is Becomes.JOB_RECORDS:
            flagged += _withdraw_records(conn, resource_type, keys, now, reason)
        if resource_type == "Encounter":
            replace_encounter_conditions(conn, pairs, [])
        else:
            flagged += _withdraw_evidence(conn, resource_type, pairs)
    return flagged


def _withdraw_records(
    conn: Connection, resource_type: str, keys: list[ResourceKey], now: str, reason: str
) -> list[ResourceKey]:
    tombstoned = tombstone_records(conn, keys, now, reason)
    if resource_type in EVENT_TYPES:
        reconcile_multi_source(conn, tombstoned.people)
    episodes_store.mark_stale(conn, tombstoned.people)
    if resource_type in _MAPPED_PER_PATIENT:
        return flag_of_subjects(conn, "QuestionnaireResponse", sorted(tombstoned.subjects))
    return []


def _withdraw_evidence(
    conn: Connection, resource_type: str, pairs: list[tuple[str, str]]
) -> list[ResourceKey]:
    """The Encounters this evidence named (and for a Condition, those naming it) are
    derived again without it."""
    encounters = encounters_named_by(conn, resource_type, pairs)
    replace_encounter_evidence(conn, resource_type, pairs, [])
    if resource_type == "Condition":
        encounters += encounters_naming(conn, pairs)
    by_source: dict[str, list[str]] = defaultdict(list)
    for source, encounter_id in dict.fromkeys(encounters):
        by_source[source].append(encounter_id)
    for source, ids in by_source.items():
        flag_for_derivation(conn, source, "Encounter", ids)
    return [(source, "Encounter", eid) for source, ids in by_source.items() for eid in ids]
