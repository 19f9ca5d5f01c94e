"""QuestionnaireResponses: all of a patient's responses mapped together, since a repeat
screen's job depends on the earlier ones; a response without a subject on its own."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import Connection

from integration.clock import utc_now
from integration.journey.derivers.base import (
    CurrentResource,
    JourneyUpdate,
    ResourceKey,
    isolate,
    load_current,
    mark_done,
    replace_records,
)
from integration.store.keys import in_keys
from integration.store.quarantine import close_mapped
from integration.store.schema import current_resources
from mappings.failed import describe_failure
from mappings.fhir_values import reference_id
from mappings.model import JobRecord
from mappings.questionnaire_response import map_questionnaire_responses
from mappings.rulepack import RulePack


def derive(
    conn: Connection, batch: list[CurrentResource], pack: RulePack, summary: JourneyUpdate
) -> list[ResourceKey]:
    subjects = {(r.source, _subject(r)) for r in batch}
    everything: list[CurrentResource] = list(batch)
    seen = {(c.source, c.resource_id) for c in batch}
    known_subjects = [(s, subject) for s, subject in subjects if subject is not None]
    if known_subjects:
        history = load_current(
            conn,
            "QuestionnaireResponse",
            in_keys((current_resources.c.source, current_resources.c.subject_id), known_subjects),
        )
        for response in history:
            if (response.source, response.resource_id) not in seen:
                seen.add((response.source, response.resource_id))
                everything.append(response)
    # One group per patient; a response without a subject is mapped on its own.
    groups: dict[tuple[str, str], list[CurrentResource]] = defaultdict(list)
    for response in everything:
        subject = _subject(response)
        key = (response.source, f"Patient/{subject}" if subject else response.resource_id)
        groups[key].append(response)
    records: list[JobRecord] = []
    failed: list[tuple[CurrentResource, str]] = []
    for members in groups.values():
        mapped, failing = _map_responses(members, pack)
        records.extend(mapped)
        failed.extend(failing)
    failing_ids = {id(c) for c, _ in failed}
    placed = [c for c in everything if id(c) not in failing_ids]
    replace_records(conn, placed, records, summary)
    # History that maps now (another response fixed) closes its entries too.
    close_mapped(conn, [c.key for c in placed], utc_now())
    if failed:
        isolate(conn, failed, pack, summary)
    # Responses pulled in as history are now up to date too.
    mark_done(conn, everything)
    return []


def _map_responses(
    members: list[CurrentResource], pack: RulePack
) -> tuple[list[JobRecord], list[tuple[CurrentResource, str]]]:
    """One patient's responses mapped together (a repeat screen's job depends on the
    earlier ones). If that fails, each is tried alone to find the ones that fail, and
    the rest are mapped together without them."""
    try:
        return map_questionnaire_responses([(m.ref, m.content) for m in members], pack), []
    except Exception:
        failing: list[tuple[CurrentResource, str]] = []
        for member in members:
            try:
                map_questionnaire_responses([(member.ref, member.content)], pack)
            except Exception as exc:
                failing.append((member, describe_failure(exc)))
        rest = [m for m in members if all(m is not f for f, _ in failing)]
        try:
            mapped = map_questionnaire_responses([(m.ref, m.content) for m in rest], pack)
        except Exception as exc:  # fails only together: none of them can be placed
            failure = describe_failure(exc)
            return [], failing + [(m, failure) for m in rest]
        return mapped, failing


def _subject(current: CurrentResource) -> str | None:
    return reference_id(current.content.get("subject"), "Patient")
