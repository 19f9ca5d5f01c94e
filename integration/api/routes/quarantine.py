"""The quarantine: what could not be stored or mapped, and closing an entry with a reason."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from integration.access.principal import Principal
from integration.api.deps import ManageQuarantine, ReadOperations, ReadStoreDep, StoreDep
from integration.api.openapi import problem
from integration.api.problems import ApiProblem
from integration.api.responses import OrjsonResponse
from integration.clock import utc_now
from integration.store import quarantine as store

router = APIRouter(
    prefix="/quarantine",
    tags=["quarantine"],
    responses={
        **problem(401, "Missing or wrong API key"),
        **problem(400, "A parameter or the body is invalid (the problem names it)"),
    },
)
NO_ENTRY = problem(404, "No quarantine entry with that id")
ROW_ID_MAX = 2**63 - 1  # the store's row ids are 64-bit
EntryId = Annotated[int, Path(ge=1, le=ROW_ID_MAX, description="A quarantine entry id")]


class QuarantineEntry(BaseModel):
    id: int
    stage: Literal["intake", "mapping"] = Field(
        description="intake: could not be stored as a resource; mapping: stored, but its "
        "derivation failed (the resource has an explained unclassified record)"
    )
    source: str
    origin: str | None = Field(description="File, page or push it came from")
    location: str | None = Field(description="Line or entry in it (mapping: the version)")
    resource_type: str | None
    resource_id: str | None
    fhir_path: str | None
    error: str
    content_truncated: bool = Field(description="content holds only the head of the input")
    received_at: str
    last_seen_at: str | None
    resolved_at: str | None = Field(description="When the entry was closed; null while open")
    resolution: Literal["fixed", "dismissed", "resolved"] | None
    resolution_note: str | None
    resolved_by: str | None


class QuarantineEntryWithContent(QuarantineEntry):
    content: str | None


class QuarantinePage(BaseModel):
    items: list[QuarantineEntry]
    next_after: int | None = Field(description="Pass as ?after= for the next page; null at end")


class CloseEntry(BaseModel):
    reason: str = Field(min_length=1, max_length=store.MAX_NOTE, description="Kept with the entry")


@router.get("", response_model=QuarantinePage)
def list_entries(
    engine: ReadStoreDep,
    _caller: ReadOperations,
    closed: Annotated[bool, Query(description="Include closed entries")] = False,
    stage: Annotated[Literal["intake", "mapping"] | None, Query()] = None,
    after: Annotated[int, Query(ge=0, le=ROW_ID_MAX, description="Entries after this id")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> OrjsonResponse:
    """Open entries (or all), oldest first."""
    with engine.connect() as conn:
        items = store.entries(conn, limit + 1, closed, stage, after)
    more = len(items) > limit
    items = items[:limit]
    return OrjsonResponse({"items": items, "next_after": items[-1]["id"] if more else None})


@router.get(
    "/{entry_id}",
    response_model=QuarantineEntryWithContent,
    responses=NO_ENTRY,
)
def get_entry(entry_id: EntryId, engine: ReadStoreDep, _caller: ReadOperations) -> OrjsonResponse:
    """One entry with the content that was kept."""
    with engine.connect() as conn:
        entry = store.entry(conn, entry_id)
    if entry is None:
        raise ApiProblem(404, "Not Found", f"no quarantine entry {entry_id}")
    return OrjsonResponse(entry)


def _close(
    engine: StoreDep, entry_id: int, resolution: str, body: CloseEntry, caller: Principal
) -> OrjsonResponse:
    try:
        with engine.begin() as conn:
            entry = store.close_entry(
                conn, entry_id, resolution, body.reason, caller.label, utc_now()
            )
    except store.QuarantineEntryNotFound:
        raise ApiProblem(404, "Not Found", f"no quarantine entry {entry_id}") from None
    except ValueError as exc:
        raise ApiProblem(400, "Bad Request", str(exc)) from None
    return OrjsonResponse(entry)


@router.post(
    "/{entry_id}/dismiss",
    response_model=QuarantineEntryWithContent,
    responses=NO_ENTRY,
)
def dismiss(
    entry_id: EntryId, body: CloseEntry, engine: StoreDep, caller: ManageQuarantine
) -> OrjsonResponse:
    """Close an entry that will not be fixed, with the reason."""
    return _close(engine, entry_id, store.DISMISSED, body, caller)


@router.post(
    "/{entry_id}/resolve",
    response_model=QuarantineEntryWithContent,
    responses=NO_ENTRY,
)
def resolve(
    entry_id: EntryId, body: CloseEntry, engine: StoreDep, caller: ManageQuarantine
) -> OrjsonResponse:
    """Close an entry fixed in a way the store cannot see (a bad file deleted), with how."""
    return _close(engine, entry_id, store.RESOLVED, body, caller)
