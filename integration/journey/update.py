"""Bring the journey zone up to date with the raw zone.

Works through current resources flagged `needs_derive`, in dependency order:
Patients (identity), Conditions (re-flag the Encounters that point to them),
Encounters (one job record each), QuestionnaireResponses (all of a patient's
responses together, since a repeat screen's job depends on earlier ones).
Each batch commits on its own, so an interrupted run resumes where it
stopped. `journey remap` flags everything and runs this again.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    and_,
    delete,
    func,
    or_,
    select,
    update,
)

from integration.clock import utc_now
from integration.gc_policy import batch_collection
from integration.journey.identity import SourcePatient, link_patients
from integration.store.engine import GrowingTables
from integration.store.errors import describe_error, store_unavailable
from integration.store.keys import in_keys
from integration.store.locks import DERIVE, hold, let_interactive_writes_through
from integration.store.quarantine import MappingFailure, close_mapped, record_mapping_failures
from integration.store.raw import DERIVED_TYPES
from integration.store.schema import (
    current_resources,
    job_records,
    person_links,
    raw_resources,
    resource_links,
)
from integration.store.text import storable
from mappings.encounter import EncounterContext, map_encounter, referenced_condition_ids
from mappings.failed import describe_failure, failed_record
from mappings.fhir_values import Code, concept_codes, reference_id
from mappings.model import JobRecord, SourceRef
from mappings.questionnaire_response import map_questionnaire_responses
from mappings.rulepack import RulePack

DeriveProgress = Callable[[int], None]
ResourceKey = tuple[str, str, str]
# Types that become job records; a Patient becomes a person, a Condition evidence.
RECORD_TYPES = ("Encounter", "QuestionnaireResponse")
log = logging.getLogger(__name__)
JOURNEY_TABLES = (
    "current_resources",
    "job_records",
    "person_links",
    "people",
    "patient_identifiers",
    "resource_links",
)


@dataclass(slots=True)
class JourneyUpdate:
    people_linked: int = 0
    records_by_job: Counter[str] = field(default_factory=Counter)
    resources: int = 0
    # Resources whose derivation failed and was isolated (see `journey quarantine`).
    mapping_failures: int = 0

    def add(self, other: JourneyUpdate) -> None:
        """Fold in a later run's counts (a sync derives in several rounds)."""
        self.people_linked += other.people_linked
        self.records_by_job.update(other.records_by_job)
        self.resources += other.resources
        self.mapping_failures += other.mapping_failures


@dataclass(frozen=True, slots=True)
class _Current:
    source: str
    resource_type: str
    resource_id: str
    version_key: str
    content: dict[str, Any]

    @property
    def ref(self) -> SourceRef:
        return SourceRef(self.source, self.resource_type, self.resource_id, self.version_key)

    @property
    def key(self) -> ResourceKey:
        return (self.source, self.resource_type, self.resource_id)


def record_id(ref: SourceRef) -> str:
    """Stable across remaps: one record per (source, type, id)."""
    key = f"{ref.source}|{ref.resource_type}|{ref.resource_id}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def pending_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(current_resources)
                .where(current_resources.c.needs_derive.is_(True))
            ).scalar_one()
        )


def flag_all(engine: Engine) -> int:
    """Mark every derivable resource for derivation again (`journey remap`)."""
    with engine.begin() as conn:
        result = conn.execute(
            update(current_resources)
            .where(current_resources.c.resource_type.in_(DERIVED_TYPES))
            .values(needs_derive=True)
        )
        return int(result.rowcount)


# A step derives one batch of one type; it returns further resources it flagged for
# derivation (a Condition's Encounters), which a scoped run takes on too.
Step = Callable[[Connection, list["_Current"], RulePack, "JourneyUpdate"], list[ResourceKey]]


def update_journey(
    engine: Engine,
    pack: RulePack,
    batch_size: int = 500,
    on_progress: DeriveProgress | None = None,
    only: Iterable[ResourceKey] | None = None,
) -> JourneyUpdate:
    """Derive what is pending, or with `only` just those resources (source, type, id)
    and what they bring along: a push maps what it wrote, not the whole store's backlog.

    A resource whose derivation fails is isolated: its batch is derived again one
    resource at a time, the failing one becomes an explained `unclassified` record
    (Encounter, QuestionnaireResponse) and a `mapping` quarantine entry, and everyone
    else's journey goes on. Only the store itself failing stops the run."""
    summary = JourneyUpdate()
    progress = on_progress or (lambda _n: None)
    scope = set(only) if only is not None else None
    steps: Sequence[tuple[str, Step]] = (
        ("Patient", _derive_patients),
        ("Condition", _derive_conditions),
        ("Encounter", _derive_encounters),
        ("QuestionnaireResponse", _derive_questionnaire_responses),
    )
    growth = GrowingTables(engine, JOURNEY_TABLES)
    with batch_collection():
        for resource_type, step in steps:
            while True:
                if scope is None:  # a bulk run: a push waiting to write goes first
                    let_interactive_writes_through(engine)
                done = _derive_batch(engine, pack, resource_type, step, batch_size, scope, summary)
                if not done:
                    break
                progress(done)
                growth.grew(done)
    growth.finish()
    return summary


def _derive_batch(
    engine: Engine,
    pack: RulePack,
    resource_type: str,
    step: Step,
    batch_size: int,
    scope: set[ResourceKey] | None,
    summary: JourneyUpdate,
) -> int:
    """Derive one batch in one transaction; returns its size (0: nothing left)."""
    if scope is not None and not any(key[1] == resource_type for key in scope):
        return 0  # nothing of this type in scope: no transaction, no wait for the lock
    batch: list[_Current] = []
    found = JourneyUpdate()
    try:
        with engine.begin() as conn:
            hold(conn, DERIVE, utc_now())
            batch = _pending(conn, resource_type, batch_size, scope)
            if not batch:
                return 0
            more = _derive_in(conn, step, batch, pack, found)
    except Exception as exc:
        if not batch or store_unavailable(exc):
            raise
        found, more = JourneyUpdate(), []
        for current in batch:
            more.extend(_derive_alone(engine, pack, step, current, found))
    found.resources = len(batch)
    summary.add(found)
    if scope is not None:
        # Done with: a scoped run reads no further than what it was asked for.
        scope.difference_update(c.key for c in batch)
        scope.update(more)
    return len(batch)


def _derive_in(
    conn: Connection, step: Step, batch: list[_Current], pack: RulePack, found: JourneyUpdate
) -> list[ResourceKey]:
    """Run a step on resources read as pending, in the caller's transaction (which holds
    the derive lock), and mark them done."""
    # Closed first: a resource failing again reopens its entry.
    close_mapped(conn, [c.key for c in batch], utc_now())
    more = step(conn, batch, pack, found)
    _mark_done(conn, batch)
    return more


def _derive_alone(
    engine: Engine, pack: RulePack, step: Step, current: _Current, found: JourneyUpdate
) -> list[ResourceKey]:
    """One resource of a batch that failed: derived alone, or isolated as a failure."""
    try:
        with engine.begin() as conn:
            hold(conn, DERIVE, utc_now())
            return _derive_in(conn, step, [current], pack, found)
    except Exception as exc:
        if store_unavailable(exc):
            raise
        failure = describe_error(exc)
    log.warning(
        "derivation of %s/%s in source %s failed (%s): isolated, see `journey quarantine`",
        current.resource_type,
        current.resource_id,
        current.source,
        failure,
    )
    with engine.begin() as conn:
        hold(conn, DERIVE, utc_now())
        _isolate(conn, [(current, failure)], pack, found)
        _mark_done(conn, [current])
    return []


def _isolate(
    conn: Connection, failed: list[tuple[_Current, str]], pack: RulePack, found: JourneyUpdate
) -> None:
    """Quarantine failed resources as `mapping` entries; Encounters and
    QuestionnaireResponses also get their explained `unclassified` record."""
    now = utc_now()
    record_mapping_failures(
        conn,
        [
            MappingFailure(
                c.source,
                c.resource_type,
                c.resource_id,
                c.version_key,
                failure,
                orjson.dumps(c.content).decode(),
            )
            for c, failure in failed
        ],
        now,
    )
    placed = [(c, failure) for c, failure in failed if c.resource_type in RECORD_TYPES]
    if placed:
        _replace_records(
            conn,
            [c for c, _ in placed],
            [failed_record(c.content, c.ref, pack, failure) for c, failure in placed],
            found,
        )
    found.mapping_failures += len(failed)


def _load_current(
    conn: Connection, resource_type: str, *where: ColumnElement[bool], limit: int | None = None
) -> list[_Current]:
    """Current resources of one type with their stored content, in a stable order."""
    query = (
        select(
            current_resources.c.source,
            current_resources.c.resource_id,
            raw_resources.c.version_key,
            raw_resources.c.content,
        )
        .join(raw_resources, raw_resources.c.id == current_resources.c.raw_id)
        .where(current_resources.c.resource_type == resource_type, *where)
        .order_by(current_resources.c.source, current_resources.c.resource_id)
    )
    if limit is not None:
        query = query.limit(limit)
    return [
        _Current(
            row.source, resource_type, row.resource_id, row.version_key, orjson.loads(row.content)
        )
        for row in conn.execute(query)
    ]


def _pending(
    conn: Connection, resource_type: str, limit: int, scope: set[ResourceKey] | None = None
) -> list[_Current]:
    where: list[ColumnElement[bool]] = [current_resources.c.needs_derive.is_(True)]
    if scope is not None:
        mine = [(s, t, i) for s, t, i in scope if t == resource_type]
        if not mine:
            return []
        where.append(
            in_keys(
                (
                    current_resources.c.source,
                    current_resources.c.resource_type,
                    current_resources.c.resource_id,
                ),
                mine,
            )
        )
    return _load_current(conn, resource_type, *where, limit=limit)


def _mark_done(conn: Connection, batch: Iterable[_Current]) -> None:
    keys = [(c.source, c.resource_type, c.resource_id) for c in batch]
    conn.execute(
        update(current_resources)
        .where(
            in_keys(
                (
                    current_resources.c.source,
                    current_resources.c.resource_type,
                    current_resources.c.resource_id,
                ),
                keys,
            )
        )
        .values(needs_derive=False)
    )


def _derive_patients(
    conn: Connection, batch: list[_Current], _pack: RulePack, summary: JourneyUpdate
) -> list[ResourceKey]:
    link_patients(
        conn, [SourcePatient(p.source, p.resource_id, p.content) for p in batch], utc_now()
    )
    summary.people_linked += len(batch)
    return []


def _derive_conditions(
    conn: Connection, batch: list[_Current], _pack: RulePack, _summary: JourneyUpdate
) -> list[ResourceKey]:
    # A Condition may arrive after the Encounter that names it: re-derive those Encounters.
    flagged: list[ResourceKey] = []
    for condition in batch:
        naming = (
            conn.execute(
                select(resource_links.c.from_id).where(
                    resource_links.c.source == condition.source,
                    resource_links.c.from_type == "Encounter",
                    resource_links.c.to_type == "Condition",
                    resource_links.c.to_id == condition.resource_id,
                )
            )
            .scalars()
            .all()
        )
        if not naming:
            continue
        conn.execute(
            update(current_resources)
            .where(
                current_resources.c.source == condition.source,
                current_resources.c.resource_type == "Encounter",
                current_resources.c.resource_id.in_(naming),
            )
            .values(needs_derive=True)
        )
        flagged.extend((condition.source, "Encounter", eid) for eid in naming)
    return flagged


def _condition_codes(conn: Connection, source: str, ids: set[str]) -> dict[str, list[Code]]:
    if not ids:
        return {}
    rows = conn.execute(
        select(current_resources.c.resource_id, raw_resources.c.content)
        .join(raw_resources, raw_resources.c.id == current_resources.c.raw_id)
        .where(
            current_resources.c.source == source,
            current_resources.c.resource_type == "Condition",
            current_resources.c.resource_id.in_(ids),
        )
    ).all()
    return {
        row.resource_id: list(concept_codes(orjson.loads(row.content).get("code"))) for row in rows
    }


def _derive_encounters(
    conn: Connection, batch: list[_Current], pack: RulePack, summary: JourneyUpdate
) -> list[ResourceKey]:
    by_source: dict[str, list[_Current]] = defaultdict(list)
    for encounter in batch:
        by_source[encounter.source].append(encounter)
    records: list[JobRecord] = []
    failed: list[tuple[_Current, str]] = []
    links: list[dict[str, str]] = []
    for source, encounters in by_source.items():
        wanted = {cid for e in encounters for cid in referenced_condition_ids(e.content)}
        codes = _condition_codes(conn, source, wanted)
        for encounter in encounters:
            referenced = referenced_condition_ids(encounter.content)
            context = EncounterContext({cid: codes[cid] for cid in referenced if cid in codes})
            try:
                records.append(map_encounter(encounter.content, encounter.ref, pack, context))
            except Exception as exc:  # this Encounter only: the others map on
                failed.append((encounter, describe_failure(exc)))
            links.extend(
                {
                    "source": source,
                    "from_type": "Encounter",
                    "from_id": encounter.resource_id,
                    "to_type": "Condition",
                    "to_id": cid,
                }
                for cid in referenced
            )
    conn.execute(
        delete(resource_links).where(
            resource_links.c.from_type == "Encounter",
            in_keys(
                (resource_links.c.source, resource_links.c.from_id),
                [(e.source, e.resource_id) for e in batch],
            ),
        )
    )
    if links:
        conn.execute(resource_links.insert(), links)
    failing_ids = {id(e) for e, _ in failed}
    _replace_records(conn, [e for e in batch if id(e) not in failing_ids], records, summary)
    if failed:
        _isolate(conn, failed, pack, summary)
    return []


def _derive_questionnaire_responses(
    conn: Connection, batch: list[_Current], pack: RulePack, summary: JourneyUpdate
) -> list[ResourceKey]:
    subjects = {(r.source, _subject(r)) for r in batch}
    everything: list[_Current] = list(batch)
    seen = {(c.source, c.resource_id) for c in batch}
    known_subjects = [(s, subject) for s, subject in subjects if subject is not None]
    if known_subjects:
        history = _load_current(
            conn,
            "QuestionnaireResponse",
            in_keys((current_resources.c.source, current_resources.c.subject_id), known_subjects),
        )
        for response in history:
            if (response.source, response.resource_id) not in seen:
                seen.add((response.source, response.resource_id))
                everything.append(response)
    # One group per patient; a response without a subject is mapped on its own.
    groups: dict[tuple[str, str], list[_Current]] = defaultdict(list)
    for response in everything:
        subject = _subject(response)
        key = (response.source, f"Patient/{subject}" if subject else response.resource_id)
        groups[key].append(response)
    records: list[JobRecord] = []
    failed: list[tuple[_Current, str]] = []
    for members in groups.values():
        mapped, failing = _map_responses(members, pack)
        records.extend(mapped)
        failed.extend(failing)
    failing_ids = {id(c) for c, _ in failed}
    placed = [c for c in everything if id(c) not in failing_ids]
    _replace_records(conn, placed, records, summary)
    # History that maps now (another response fixed) closes its entries too.
    close_mapped(conn, [c.key for c in placed], utc_now())
    if failed:
        _isolate(conn, failed, pack, summary)
    # Responses pulled in as history are now up to date too.
    _mark_done(conn, everything)
    return []


def _map_responses(
    members: list[_Current], pack: RulePack
) -> tuple[list[JobRecord], list[tuple[_Current, str]]]:
    """One patient's responses mapped together (a repeat screen's job depends on the
    earlier ones). If that fails, each is tried alone to find the ones that fail, and
    the rest are mapped together without them."""
    try:
        return map_questionnaire_responses([(m.ref, m.content) for m in members], pack), []
    except Exception:
        failing: list[tuple[_Current, str]] = []
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


def _subject(current: _Current) -> str | None:
    return reference_id(current.content.get("subject"), "Patient")


def _replace_records(
    conn: Connection, derived_from: list[_Current], records: list[JobRecord], summary: JourneyUpdate
) -> None:
    conn.execute(
        delete(job_records).where(
            in_keys(
                (job_records.c.source, job_records.c.resource_type, job_records.c.resource_id),
                [(c.source, c.resource_type, c.resource_id) for c in derived_from],
            )
        )
    )
    if not records:
        return
    now = utc_now()
    conn.execute(job_records.insert(), [_record_row(record, now) for record in records])
    summary.records_by_job.update(record.job.value for record in records)


def _record_row(record: JobRecord, now: str) -> dict[str, Any]:
    ref = record.source_ref
    return {
        "id": record_id(ref),
        "source": ref.source,
        "resource_type": ref.resource_type,
        "resource_id": ref.resource_id,
        "version_key": ref.version,
        "subject_id": storable(record.subject_id),
        "job": record.job.value,
        "occurred_start": record.occurred_start or "",
        "occurred_end": record.occurred_end,
        "title": storable(record.title),
        "setting": storable(record.setting),
        "concern_codes": orjson.dumps(list(record.concern_codes)).decode(),
        "matched_codes": orjson.dumps(list(record.matched_codes)).decode(),
        "rule_id": record.rule_id,
        "pack_version": record.pack_version,
        "reason": storable(record.reason),
        "instrument": storable(record.instrument),
        "score": record.score,
        "fulfilment_score": record.fulfilment_score,
        "warnings": orjson.dumps(list(record.warnings)).decode(),
        "derived_at": now,
    }


def orphan_records(engine: Engine, limit: int = 10) -> tuple[int, list[dict[str, Any]]]:
    """Job records in no journey: their subject Patient has not arrived (yet), or they
    name no subject we can read. A count, and a few examples."""
    condition = or_(
        job_records.c.subject_id.is_(None),
        ~select(person_links.c.person_id)
        .where(
            person_links.c.source == job_records.c.source,
            person_links.c.patient_id == job_records.c.subject_id,
        )
        .exists(),
    )
    with engine.connect() as conn:
        count = conn.execute(
            select(func.count()).select_from(job_records).where(condition)
        ).scalar_one()
        rows = conn.execute(
            select(
                job_records.c.source,
                job_records.c.resource_type,
                job_records.c.resource_id,
                job_records.c.subject_id,
                raw_resources.c.origin,
                raw_resources.c.location,
            )
            .join(
                current_resources,
                and_(
                    current_resources.c.source == job_records.c.source,
                    current_resources.c.resource_type == job_records.c.resource_type,
                    current_resources.c.resource_id == job_records.c.resource_id,
                ),
            )
            .join(raw_resources, raw_resources.c.id == current_resources.c.raw_id)
            .where(condition)
            .order_by(job_records.c.source, job_records.c.resource_id)
            .limit(limit)
        ).all()
    return int(count), [dict(row._mapping) for row in rows]
