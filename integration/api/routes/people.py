"""People and their journeys: the unified view downstream apps read."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query

from integration.api.cursors import decode_cursor, encode_cursor
from integration.api.deps import WITHOUT_NUL, CallerDep, ReadStoreDep, SettingsDep
from integration.api.models import JourneyPage, PeoplePage, PersonDetail, ReviewPage
from integration.api.openapi import problem
from integration.api.problems import ApiProblem
from integration.api.responses import OrjsonResponse
from integration.store import queries
from integration.store.matches import review_queue as review_queue_of
from mappings.dates import ISO_FORMAT
from mappings.model import Job

router = APIRouter(tags=["people"])
BAD_PARAMETER = problem(400, "A parameter is invalid (the problem names it)")
NO_PERSON = problem(404, "No person with that id")
Limit = Annotated[int | None, Query(ge=1, le=1000, description="Page size (default from settings)")]
Cursor = Annotated[
    str | None, Query(pattern=WITHOUT_NUL, description="next_cursor from the previous page")
]
PersonId = Annotated[str, Path(pattern=WITHOUT_NUL, description="A person id")]


@router.get("/people", response_model=PeoplePage, responses=BAD_PARAMETER)
def list_people(
    engine: ReadStoreDep,
    settings: SettingsDep,
    _caller: CallerDep,
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
        items = queries.list_people(conn, size + 1, after, wanted)
    more = len(items) > size
    items = items[:size]
    next_cursor = encode_cursor([items[-1]["id"]]) if more and items else None
    return OrjsonResponse({"items": items, "next_cursor": next_cursor})


@router.get("/people/review", response_model=ReviewPage, responses=BAD_PARAMETER)
def review_queue(
    engine: ReadStoreDep, settings: SettingsDep, _caller: CallerDep, limit: Limit = None
) -> OrjsonResponse:
    """Possible matches waiting for a reviewer: pairs of source Patients that may be one
    person (a shared trusted identifier whose demographics do not confirm it), both
    side by side with how each field compared. Oldest first."""
    with engine.connect() as conn:
        items = review_queue_of(conn, limit or settings.page_size)
    return OrjsonResponse({"items": items})


@router.get(
    "/people/{person_id}", response_model=PersonDetail, responses={**BAD_PARAMETER, **NO_PERSON}
)
def get_person(person_id: PersonId, engine: ReadStoreDep, _caller: CallerDep) -> OrjsonResponse:
    """One person: the source Patients linked to them, identifiers, record counts per job.

    A person merged into another (a later Patient shared an identifier) is
    answered with the surviving person."""
    with engine.connect() as conn:
        resolved = queries.resolve_person(conn, person_id)
        person = queries.get_person(conn, resolved) if resolved else None
    if person is None:
        raise ApiProblem(404, "Not Found", f"no person with id {person_id}")
    return OrjsonResponse(person)


def _bound(value: str | None, name: str, end: bool) -> str | None:
    """A from/to parameter as ISO UTC: a date covers its whole day; a dateTime needs a timezone."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime.combine(day + timedelta(days=1) if end else day, time(), UTC)
        else:
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None:
                raise ValueError("no timezone")
    except ValueError as exc:
        raise ApiProblem(
            400,
            "Bad Request",
            f"{name} must be a date (YYYY-MM-DD) or a dateTime with timezone",
            invalid_params=[{"in": "query", "name": name, "reason": str(exc)}],
        ) from exc
    return moment.astimezone(UTC).strftime(ISO_FORMAT)


@router.get(
    "/people/{person_id}/journey",
    response_model=JourneyPage,
    responses={**BAD_PARAMETER, **NO_PERSON},
)
def get_journey(
    person_id: PersonId,
    engine: ReadStoreDep,
    settings: SettingsDep,
    _caller: CallerDep,
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
    limit: Limit = None,
    cursor: Cursor = None,
) -> OrjsonResponse:
    """A person's job records across all sources, in time order, each with its reason
    and flags (self_harm_risk first of all)."""
    size = limit or settings.page_size
    where = queries.JourneyFilter(
        jobs=[j.value for j in job or ()],
        start=_bound(from_, "from", end=False),
        end=_bound(to, "to", end=True),
        include_excluded=include_excluded,
    )
    after = decode_cursor(cursor, 2) if cursor else None
    with engine.connect() as conn:
        resolved = queries.resolve_person(conn, person_id)
        if resolved is None:
            raise ApiProblem(404, "Not Found", f"no person with id {person_id}")
        items = queries.journey(
            conn, resolved, size + 1, (after[0], after[1]) if after else None, where
        )
    more = len(items) > size
    items = items[:size]
    next_cursor = (
        encode_cursor([items[-1]["occurred_start"] or "", items[-1]["id"]])
        if more and items
        else None
    )
    return OrjsonResponse({"person_id": resolved, "items": items, "next_cursor": next_cursor})
