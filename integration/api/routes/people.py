"""People and their journeys: the unified view downstream apps read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Path, Query
from sqlalchemy import Connection, Engine

from integration.access.principal import Principal
from integration.access.visibility import readable, visible_person
from integration.api.bounds import time_bound
from integration.api.cursors import decode_cursor, encode_cursor
from integration.api.deps import (
    WITHOUT_NUL,
    LinkPeople,
    ReadPeople,
    ReadStoreDep,
    SettingsDep,
    StoreDep,
)
from integration.api.models import (
    EpisodesPage,
    JourneyPage,
    LinkHistory,
    MergePeople,
    PairDecided,
    PairDecision,
    PeoplePage,
    PersonAfter,
    PersonDetail,
    ReviewPage,
    SplitPatient,
)
from integration.api.openapi import problem
from integration.api.problems import ApiProblem
from integration.api.responses import OrjsonResponse
from integration.clock import utc_now
from integration.journey import review
from integration.journey.episodes import episodes_of_person
from integration.journey.matching import Outcome
from integration.journey.review import PersonMerged, UnknownPatient, UnknownPerson
from integration.journey.rule_packs import store_pack
from integration.store import people as people_store
from integration.store import queries
from integration.store.matches import review_queue as review_queue_of
from integration.store.schema import people as people_table
from mappings.model import Job
from mappings.rulepack import IdentityRules

router = APIRouter(tags=["people"])
BAD_PARAMETER = problem(400, "A parameter is invalid (the problem names it)")
NO_PERSON = problem(404, "No person with that id")
Limit = Annotated[int | None, Query(ge=1, le=1000, description="Page size (default from settings)")]
Cursor = Annotated[
    str | None, Query(pattern=WITHOUT_NUL, description="next_cursor from the previous page")
]
PersonId = Annotated[str, Path(pattern=WITHOUT_NUL, description="A person id")]
_T = TypeVar("_T")


@router.get("/people", response_model=PeoplePage, responses=BAD_PARAMETER)
def list_people(
    engine: ReadStoreDep,
    settings: SettingsDep,
    caller: ReadPeople,
    identifier: Annotated[
        str | None,
        Query(pattern=WITHOUT_NUL, description="Only people with this identifier, as system|value"),
    ] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> OrjsonResponse:
    """People, one per real person across sources, in a stable order."""
    size = limit or settings.page_size
    wanted: tuple[str, str] | None = None
    if identifier is not None:
        system, sep, value = identifier.partition("|")
        if not sep or not system or not value:
            raise ApiProblem(400, "Bad Request", "identifier must be written system|value")
        wanted = (system, value)
    after = decode_cursor(cursor, 1)[0] if cursor else None
    with engine.connect() as conn:
        # In the query: a patient-level client lists its own person only, a client
        # limited to a population its people only, and a withheld person no one.
        shown = readable(conn, caller).where(people_table.c.id)
        items = queries.list_people(conn, size + 1, after, wanted, shown)
    more = len(items) > size
    items = items[:size]
    next_cursor = encode_cursor([items[-1]["id"]]) if more and items else None
    return OrjsonResponse({"items": items, "next_cursor": next_cursor})


@router.get("/people/review", response_model=ReviewPage, responses=BAD_PARAMETER)
def review_queue(
    engine: ReadStoreDep, settings: SettingsDep, _caller: LinkPeople, limit: Limit = None
) -> OrjsonResponse:
    """Possible matches waiting for a reviewer: pairs of source Patients that may be one
    person (a shared trusted identifier whose demographics do not confirm it), both
    side by side with how each field compared. Oldest first."""
    with engine.connect() as conn:
        items = review_queue_of(conn, limit or settings.page_size)
    return OrjsonResponse({"items": items})


def _visible(conn: Connection, caller: Principal, person_id: str) -> str:
    """The person as resolved, if this client may read them; else 404, the same answer
    as for a person that does not exist."""
    resolved = visible_person(conn, caller, person_id)
    if resolved is None:
        raise ApiProblem(404, "Not Found", f"no person with id {person_id}")
    return resolved


def _decide(engine: Engine, decide: Callable[[Connection, IdentityRules], _T]) -> _T:
    """Run a reviewer's decision under the derive lock, with the store's identity rules;
    unknown Patients and people answer 404, a merged person 409 naming the survivor."""
    try:
        return review.under_derive_lock(engine, decide)
    except (UnknownPatient, UnknownPerson) as exc:
        raise ApiProblem(404, "Not Found", str(exc)) from None
    except PersonMerged as exc:
        raise ApiProblem(409, "Conflict", str(exc)) from None
    except ValueError as exc:
        raise ApiProblem(400, "Bad Request", str(exc)) from None


DECISION_PROBLEMS = {
    **BAD_PARAMETER,
    **problem(404, "No such Patient or person"),
    **problem(409, "The person was merged into another (the problem names it)"),
}


@router.post("/people/links", response_model=PairDecided, responses=DECISION_PROBLEMS)
def decide_link(body: PairDecision, engine: StoreDep, caller: LinkPeople) -> OrjsonResponse:
    """A reviewer's decision on two source Patients: one person (`match`) or two
    (`no_match`). It outranks automatic matching, survives re-matching and is kept in
    the history; the people around them are recomputed at once."""
    a = (body.a.source, body.a.patient_id)
    b = (body.b.source, body.b.patient_id)
    now = utc_now()
    linked = _decide(
        engine,
        lambda conn, rules: review.decide_pair(
            conn, a, b, Outcome(body.decision), body.reason, caller.label, now, rules
        ),
    )
    return OrjsonResponse({"a": linked[a], "b": linked[b]})


@router.post("/people/{person_id}/merge", response_model=PersonAfter, responses=DECISION_PROBLEMS)
def merge(
    person_id: PersonId, body: MergePeople, engine: StoreDep, caller: LinkPeople
) -> OrjsonResponse:
    """Merge this person into another (a reviewer's link between a Patient of each)."""
    now = utc_now()
    survivor = _decide(
        engine,
        lambda conn, rules: review.merge_people(
            conn, person_id, body.into, body.reason, caller.label, now, rules
        ),
    )
    return OrjsonResponse({"person_id": survivor})


@router.post("/people/{person_id}/split", response_model=PersonAfter, responses=DECISION_PROBLEMS)
def split(
    person_id: PersonId, body: SplitPatient, engine: StoreDep, caller: LinkPeople
) -> OrjsonResponse:
    """Take one of this person's source Patients out of it (a reviewer's no-match with
    each of the person's other Patients). Answers the Patient's person afterwards."""
    patient = (body.source, body.patient_id)
    now = utc_now()

    def run(conn: Connection, rules: IdentityRules) -> str:
        linked = people_store.links_of(conn, [patient]).get(patient)
        if linked is None or queries.resolve_person(conn, person_id) != linked:
            raise UnknownPatient(
                f"person {person_id} has no Patient {body.patient_id} in source {body.source}"
            )
        return review.split_patient(conn, patient, body.reason, caller.label, now, rules)

    return OrjsonResponse({"person_id": _decide(engine, run)})


@router.get(
    "/people/{person_id}/history",
    response_model=LinkHistory,
    responses={
        **BAD_PARAMETER,
        **NO_PERSON,
        **problem(403, "A client limited to one patient or a population"),
    },
)
def link_history(person_id: PersonId, engine: ReadStoreDep, caller: ReadPeople) -> OrjsonResponse:
    """Every decision on a pair with one of this person's Patients: automatic verdicts
    as they changed and reviewers' decisions, oldest first."""
    if caller.patient is not None or caller.population is not None:
        # The history names the other side of each pair, whoever they are, and
        # reviewers' reasons.
        raise ApiProblem(
            403,
            "Forbidden",
            "link history needs a client that sees everyone (not one patient or population)",
        )
    try:
        with engine.connect() as conn:
            _visible(conn, caller, person_id)
            _, items = review.history_of_person(conn, person_id)
    except UnknownPerson as exc:
        raise ApiProblem(404, "Not Found", str(exc)) from None
    return OrjsonResponse({"items": items})


@router.get(
    "/people/{person_id}", response_model=PersonDetail, responses={**BAD_PARAMETER, **NO_PERSON}
)
def get_person(person_id: PersonId, engine: ReadStoreDep, caller: ReadPeople) -> OrjsonResponse:
    """One person: the source Patients linked to them, identifiers, record counts per job.

    A person merged into another (a later Patient shared an identifier) is
    answered with the surviving person."""
    with engine.connect() as conn:
        resolved = _visible(conn, caller, person_id)
        person = queries.get_person(conn, resolved)
    if person is None:
        raise ApiProblem(404, "Not Found", f"no person with id {person_id}")
    return OrjsonResponse(person)


@router.get(
    "/people/{person_id}/journey",
    response_model=JourneyPage,
    responses={**BAD_PARAMETER, **NO_PERSON},
)
def get_journey(
    person_id: PersonId,
    engine: ReadStoreDep,
    settings: SettingsDep,
    caller: ReadPeople,
    job: Annotated[list[Job] | None, Query(description="Only these jobs (repeatable)")] = None,
    from_: Annotated[
        str | None, Query(alias="from", description="Start on or after (date or dateTime)")
    ] = None,
    to: Annotated[
        str | None, Query(description="Start before (a date includes its whole day)")
    ] = None,
    include_excluded: Annotated[
        bool,
        Query(
            description="Also list records out of the journey (entered in error, cancelled, "
            "superseded), each with the reason"
        ),
    ] = False,
    episodes: Annotated[
        bool, Query(description="Also answer the person's episodes (as of now)")
    ] = False,
    limit: Limit = None,
    cursor: Cursor = None,
) -> OrjsonResponse:
    """A person's job records across all sources, in time order, each with its reason
    and flags (self_harm_risk first of all)."""
    size = limit or settings.page_size
    where = queries.JourneyFilter(
        jobs=[j.value for j in job or ()],
        start=time_bound(from_, "from", end=False),
        end=time_bound(to, "to", end=True),
        include_excluded=include_excluded,
    )
    after = decode_cursor(cursor, 2) if cursor else None
    with engine.connect() as conn:
        resolved = _visible(conn, caller, person_id)
        items = queries.journey(
            conn, resolved, size + 1, (after[0], after[1]) if after else None, where
        )
        grouped = (
            episodes_of_person(conn, resolved, store_pack(engine), utc_now()) if episodes else None
        )
    more = len(items) > size
    items = items[:size]
    next_cursor = (
        encode_cursor([items[-1]["occurred_start"] or "", items[-1]["id"]])
        if more and items
        else None
    )
    answer: dict[str, object] = {"person_id": resolved, "items": items, "next_cursor": next_cursor}
    if grouped is not None:
        answer["episodes"] = grouped
    return OrjsonResponse(answer)


@router.get(
    "/people/{person_id}/episodes",
    response_model=EpisodesPage,
    responses={**BAD_PARAMETER, **NO_PERSON},
)
def get_episodes(
    person_id: PersonId,
    engine: ReadStoreDep,
    caller: ReadPeople,
    as_of: Annotated[
        str | None,
        Query(description="Status as of this date or dateTime (default: now)"),
    ] = None,
) -> OrjsonResponse:
    """A person's episodes: their records grouped by concern, each with its diagnose ->
    treat -> keep-well stages, status, wait, contacts, sources, PROM trajectories and
    job-fulfilment answers, every figure naming the records it came from."""
    moment = time_bound(as_of, "as_of", end=False) or utc_now()
    pack = store_pack(engine)
    with engine.connect() as conn:
        resolved = _visible(conn, caller, person_id)
        items = episodes_of_person(conn, resolved, pack, moment)
    return OrjsonResponse({"person_id": resolved, "as_of": moment, "items": items})
