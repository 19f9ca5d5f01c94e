"""QuestionnaireResponses and instrument totals sent as Observations: all of a patient's
mapped together, since a repeat screen's job depends on the earlier ones and an amended
response replaces the one it amends; one without a subject on its own."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection

from integration.clock import utc_now
from integration.journey.derivers.base import (
    CurrentResource,
    JourneyUpdate,
    ResourceKey,
    counted_as,
    isolate,
    replace_records,
)
from integration.journey.derivers.evidence import link_to_encounters, patients_conditions
from integration.store.derivation import (
    current_contents,
    current_of_subjects,
    mark_derived,
    recorded_of_subjects,
)
from integration.store.quarantine import close_mapped
from mappings.evidence import Evidence
from mappings.failed import describe_failure
from mappings.fhir_values import reference_id
from mappings.model import JobRecord, SourceRef
from mappings.questionnaire_response import instrument_total, map_instrument_responses
from mappings.rulepack import RulePack


def derive(
    conn: Connection, batch: list[CurrentResource], pack: RulePack, summary: JourneyUpdate
) -> list[ResourceKey]:
    # Every Observation is evidence for the Encounter it names.
    flagged = link_to_encounters(conn, [r for r in batch if r.resource_type == "Observation"])
    # Most Observations (vital signs, labs) carry no instrument total: no record, no history.
    measured = [
        r for r in batch if r.resource_type != "Observation" or instrument_total(r.content, pack)
    ]
    if len(measured) < len(batch):
        kept = {id(r) for r in measured}
        replace_records(conn, [r for r in batch if id(r) not in kept], [], summary)
    everything: list[CurrentResource] = list(measured)
    seen = {c.key for c in measured}
    known_subjects = list({(r.source, s) for r in measured if (s := _subject(r)) is not None})
    conditions = patients_conditions(conn, known_subjects)
    if known_subjects:
        history = current_of_subjects(conn, "QuestionnaireResponse", known_subjects)
        # The Observations that are instrument totals are those with a record.
        history += recorded_of_subjects(conn, "Observation", known_subjects)
        for response in history:
            if response.key not in seen:
                seen.add(response.key)
                everything.append(response)
    # One group per patient; a response without a subject is mapped on its own.
    groups: dict[tuple[str, str], list[CurrentResource]] = defaultdict(list)
    for response in everything:
        subject = _subject(response)
        key = (response.source, f"Patient/{subject}" if subject else response.resource_id)
        groups[key].append(response)
    members = _panel_members(conn, everything)
    records: list[JobRecord] = []
    failed: list[tuple[CurrentResource, str]] = []
    for (source, group), responses in groups.items():
        known = conditions.get((source, group.removeprefix("Patient/")), [])
        mapped, failing = _map_responses(responses, pack, known, members)
        records.extend(mapped)
        failed.extend(failing)
    failing_ids = {id(c) for c, _ in failed}
    placed = [c for c in everything if id(c) not in failing_ids]
    in_batch = {c.key for c in batch}
    # Responses read as history that were themselves waiting are derived here, with
    # their patient's others, and not mapped a second time in a batch of their own.
    # (Observations are not: their own batch also links them to their Encounter.)
    taken = [
        c
        for c in everything
        if c.pending and c.resource_type == "QuestionnaireResponse" and c.key not in in_batch
    ]
    mark_derived(conn, [c.key for c in taken])
    summary.resources += len(taken)
    # Counted once, by the batch they belong to: history re-mapped here is not new.
    counted = {c.key for c in batch} | {c.key for c in taken}
    written = JourneyUpdate()
    replace_records(conn, placed, records, written)
    summary.records_by_job.update(counted_as(r) for r in records if _key(r.source_ref) in counted)
    # History that maps now (another response fixed) closes its entries too.
    close_mapped(conn, [c.key for c in placed], utc_now())
    if failed:
        isolate(conn, failed, pack, summary)
    return flagged


def _panel_members(conn: Connection, resources: list[CurrentResource]) -> dict[str, dict[str, Any]]:
    """The item Observations that total Observations name in `hasMember`, by id."""
    wanted: dict[str, set[str]] = defaultdict(set)
    for resource in resources:
        if resource.resource_type != "Observation":
            continue
        for member in resource.content.get("hasMember") or ():
            if (found := reference_id(member, "Observation")) is not None:
                wanted[resource.source].add(found)
    members: dict[str, dict[str, Any]] = {}
    for source, ids in wanted.items():
        members.update(current_contents(conn, source, "Observation", ids))
    return members


def _map_responses(
    members: list[CurrentResource],
    pack: RulePack,
    conditions: Sequence[Evidence] = (),
    panel: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[list[JobRecord], list[tuple[CurrentResource, str]]]:
    """One patient's responses mapped together (a repeat screen's job depends on the
    earlier ones). If that fails, each is tried alone to find the ones that fail, and
    the rest are mapped together without them."""
    try:
        return map_instrument_responses(
            [(m.ref, m.content) for m in members], pack, conditions, panel
        ), []
    except Exception:
        failing: list[tuple[CurrentResource, str]] = []
        for member in members:
            try:
                map_instrument_responses([(member.ref, member.content)], pack, conditions, panel)
            except Exception as exc:
                failing.append((member, describe_failure(exc)))
        rest = [m for m in members if all(m is not f for f, _ in failing)]
        try:
            mapped = map_instrument_responses(
                [(m.ref, m.content) for m in rest], pack, conditions, panel
            )
        except Exception as exc:  # fails only together: none of them can be placed
            failure = describe_failure(exc)
            return [], failing + [(m, failure) for m in rest]
        return mapped, failing


def _key(ref: SourceRef) -> ResourceKey:
    return (ref.source, ref.resource_type, ref.resource_id)


def _subject(current: CurrentResource) -> str | None:
    return reference_id(current.content.get("subject"), "Patient")
