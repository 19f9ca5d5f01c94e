"""Purge: for data that must not be kept (recorded on the wrong patient, a privacy
request). Unlike a deletion by the source, which keeps the raw versions for audit and
the job records as tombstones, a purge removes every stored version of the resource
and everything derived from it (`integration.store.purge`), after taking it out of the
journey the way a deletion does (`integration.journey.withdrawal`: its person, its
episodes, evidence and feed follow). The purge itself is audited: who, when, which
resource and how much was removed; never what it said.

Runs in one transaction holding the derive lock, so no journey update sees half of it;
what it puts back on the queue (a patient's other responses, an Encounter whose
evidence it was) is derived by the caller's `update_journey(only=...)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine

from integration.access.audit import audit_row
from integration.clock import utc_now
from integration.errors import IntegrationError
from integration.journey.derivers.base import CurrentResource, JourneyUpdate, ResourceKey
from integration.journey.rule_packs import pack_for_update
from integration.journey.update import update_journey
from integration.journey.withdrawal import withdraw
from integration.store import audit as audit_store
from integration.store.locks import DERIVE, hold
from integration.store.people import links_of
from integration.store.purge import (
    Purged,
    current_states,
    remove_stored,
    resources_of_subjects,
    stored_keys,
)
from mappings.rulepack import RulePack


class NothingToPurge(IntegrationError):
    """No version of the resource is stored."""


class NotAPatient(IntegrationError):
    """ "With their data" was asked of a resource that is not a Patient."""


@dataclass(slots=True)
class PurgeOutcome:
    removed: Purged
    keys: list[ResourceKey]
    requeued: list[ResourceKey] = field(default_factory=list)
    mapping_error: str | None = None


def purge_resource(
    engine: Engine,
    pack: RulePack,
    key: ResourceKey,
    who: str,
    via: str,
    reason: str | None,
    with_their_data: bool = False,
) -> PurgeOutcome:
    """Purge one resource (source, type, id); `NothingToPurge` when none is stored.
    `with_their_data`, for a Patient: every resource the source holds about it too."""
    source, resource_type, resource_id = key
    if with_their_data and resource_type != "Patient":
        raise NotAPatient(f"{resource_type}: only a Patient has data of its own to purge")
    keys = [key]
    if with_their_data:
        # The Patient is among its own resources unless only quarantined: named first.
        with engine.connect() as conn:
            keys += [k for k in resources_of_subjects(conn, source, [resource_id]) if k != key]
    outcome = purge_resources(engine, pack, keys, who, via, reason)
    if not outcome.keys:
        raise NothingToPurge("/".join(key))
    return outcome


def purge_subjects(
    engine: Engine,
    pack: RulePack,
    source: str,
    patient_ids: Sequence[str],
    who: str,
    via: str,
    reason: str | None,
) -> PurgeOutcome:
    """Purge every resource `source` holds about these Patients, the Patients included."""
    with engine.connect() as conn:
        keys = resources_of_subjects(conn, source, patient_ids)
    return purge_resources(engine, pack, keys, who, via, reason)


def purge_resources(
    engine: Engine,
    pack: RulePack,
    keys: Sequence[ResourceKey],
    who: str,
    via: str,
    reason: str | None,
) -> PurgeOutcome:
    """Purge these resources (those stored; others are skipped), audited one row each."""
    pack = pack_for_update(engine, pack)
    now = utc_now()
    with engine.begin() as conn:
        hold(conn, DERIVE, now)
        found = stored_keys(conn, list(keys))
        if not found:
            return PurgeOutcome(Purged(), [])
        states = current_states(conn, found)
        subject = {key: patient for key, (_, patient) in states.items() if patient}
        person_of = links_of(conn, sorted({(key[0], p) for key, p in subject.items()}))
        live = [
            CurrentResource(source, rtype, rid, "", {}, deleted=True)
            for (source, rtype, rid), (deleted, _) in states.items()
            if not deleted
        ]
        requeued = withdraw(conn, live, pack, JourneyUpdate()) if live else []
        removed = remove_stored(conn, found, states.keys(), now)
        audit_store.append(
            conn,
            [
                audit_row(
                    recorded=now,
                    action="D",
                    subtype="purge",
                    outcome="0",
                    client=who,
                    person_id=person_of.get((source, subject.get((source, rtype, rid), ""))),
                    method=via,
                    path=f"{source}/{rtype}/{rid}",
                    query=f"reason={reason}" if reason else None,
                )
                for source, rtype, rid in found
            ],
        )
    outcome = PurgeOutcome(removed, found, [k for k in requeued if k not in set(found)])
    if outcome.requeued:
        try:
            update_journey(engine, pack, only=outcome.requeued)
        except Exception as exc:  # the purge stands; the queue is derived by the next run
            outcome.mapping_error = type(exc).__name__
    return outcome
