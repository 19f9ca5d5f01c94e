"""POST /purge: remove a stored resource's every version and what was derived from it,
for data that must not be kept (`integration.journey.purge`). Administrators only
(`journey/data.purge`); the purge is audited with who asked and why."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from integration.api.deps import PurgeData, StoreDep
from integration.api.openapi import problem
from integration.api.problems import ApiProblem
from integration.api.responses import OrjsonResponse
from integration.api.routes.fhir import FHIR_ID
from integration.journey.purge import NotAPatient, NothingToPurge, purge_resource
from integration.source_names import MAX_SOURCE_NAME, SOURCE_NAME_PATTERN

router = APIRouter(
    tags=["purge"],
    responses={
        **problem(401, "Missing or wrong API key"),
        **problem(403, "The client lacks journey/data.purge"),
        **problem(400, "The body is invalid (the problem names the field)"),
    },
)


class PurgeRequest(BaseModel):
    source: str = Field(min_length=1, max_length=MAX_SOURCE_NAME, pattern=SOURCE_NAME_PATTERN)
    resource_type: str = Field(min_length=1, max_length=64, pattern=r"^[A-Z][A-Za-z]+$")
    resource_id: str = Field(pattern=FHIR_ID)
    reason: str | None = Field(
        default=None, max_length=200, description="Kept in the audit trail; no patient data"
    )
    with_their_data: bool = Field(
        default=False,
        description="For a Patient: purge every resource the source holds about it too",
    )


class PurgeResult(BaseModel):
    purged: str = Field(description="source/type/id")
    resources: int = Field(description="Resources purged (more than one with their data)")
    versions: int = Field(description="Stored versions removed")
    job_records: int
    quarantine_entries: int
    feed_events_scrubbed: int = Field(
        description="Feed events about its records that now say only that it was purged"
    )
    journey_updated: bool = Field(
        description="false: the journey around it catches up with the next mapping run"
    )


@router.post(
    "/purge",
    response_model=PurgeResult,
    responses=problem(404, "Nothing is stored for that resource"),
)
def purge(
    body: PurgeRequest, request: Request, engine: StoreDep, caller: PurgeData
) -> OrjsonResponse:
    """Remove every stored version of one resource and what the journey made of it.
    Cannot be undone; unlike a deletion by its source, only the audit entry remains."""
    name = f"{body.source}/{body.resource_type}/{body.resource_id}"
    pack = request.app.state.push.pack
    try:
        outcome = purge_resource(
            engine,
            pack,
            (body.source, body.resource_type, body.resource_id),
            caller.label,
            "POST /purge",
            body.reason,
            body.with_their_data,
        )
    except NothingToPurge:
        raise ApiProblem(404, "Not Found", f"nothing stored for {name}") from None
    except NotAPatient as exc:
        raise ApiProblem(400, "Bad Request", f"with_their_data: {exc}") from None
    removed = outcome.removed
    return OrjsonResponse(
        {
            "purged": name,
            "resources": len(outcome.keys),
            "versions": removed.versions,
            "job_records": removed.records,
            "quarantine_entries": removed.quarantine_entries,
            "feed_events_scrubbed": removed.feed_events_scrubbed,
            "journey_updated": outcome.mapping_error is None,
        }
    )
