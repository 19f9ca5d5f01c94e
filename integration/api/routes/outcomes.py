"""Cohort outcome measures: PROM change, job fulfilment, retention, bundle adoption and
waits over the kept episodes, each with numerator, denominator and definition."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from integration.access.visibility import readable
from integration.api.bounds import time_bound
from integration.api.deps import WITHOUT_NUL, ReadPeople, ReadStoreDep
from integration.api.models import OutcomeReport
from integration.api.openapi import problem
from integration.api.problems import ApiProblem
from integration.api.responses import OrjsonResponse
from integration.clock import utc_now
from integration.journey.outcomes import OutcomeQuery, measures_csv, outcome_report
from integration.journey.rule_packs import store_pack
from mappings.model import Job

router = APIRouter(prefix="/metrics", tags=["outcomes"])


@router.get(
    "/outcomes",
    response_model=OutcomeReport,
    responses={
        200: {
            "content": {
                "text/csv": {
                    "schema": {
                        "type": "string",
                        "description": "With format=csv: a header row, then one row per "
                        "measure: id,title,value,numerator,denominator,unit,definition",
                    }
                }
            }
        },
        **problem(400, "A parameter is invalid (the problem names it)"),
        **problem(401, "Missing or wrong API key"),
        **problem(403, "The client lacks the scope, or may read one patient only"),
    },
)
def outcomes(
    engine: ReadStoreDep,
    caller: ReadPeople,
    from_: Annotated[
        str | None,
        Query(alias="from", description="Episodes starting on or after (date or dateTime)"),
    ] = None,
    to: Annotated[
        str | None, Query(description="Episodes starting before (a date includes its day)")
    ] = None,
    source: Annotated[
        str | None, Query(pattern=WITHOUT_NUL, description="Episodes this source took part in")
    ] = None,
    concern: Annotated[
        str | None,
        Query(pattern=WITHOUT_NUL, description="A concern id (knee_osteoarthritis, icd10cm:I10)"),
    ] = None,
    job: Annotated[Job | None, Query(description="Episodes with a contact for this job")] = None,
    as_of: Annotated[
        str | None, Query(description="Statuses and retention as of (default: now)")
    ] = None,
    retention_months: Annotated[
        int | None, Query(ge=1, le=120, description="Retention window (default: the pack's)")
    ] = None,
    format_: Annotated[
        Literal["json", "csv"], Query(alias="format", description="json (default) or csv")
    ] = "json",
) -> Response:
    """Cohort measures over the people's episodes: share with reliable PROM improvement
    (and deterioration, recovery), mean percent PROM improvement, mean job fulfilment
    overall and per job, retention (treated people back for keep-well care within N
    months), bundle adoption and the median wait from diagnose to treat."""
    if caller.patient is not None:
        raise ApiProblem(403, "Forbidden", "cohort measures need a scope wider than one patient's")
    query = OutcomeQuery(
        start_from=time_bound(from_, "from", end=False),
        start_to=time_bound(to, "to", end=True),
        source=source,
        concern=concern,
        job=job,
        as_of=time_bound(as_of, "as_of", end=False) or utc_now(),
        retention_months=retention_months,
    )
    with engine.connect() as conn:
        # Only the people this client may read: its population, less the withheld.
        readers = readable(conn, caller)
    report = outcome_report(engine, store_pack(engine), query, readers)
    if format_ == "csv":
        return Response(measures_csv(report["measures"]), media_type="text/csv")
    return OrjsonResponse(report)
