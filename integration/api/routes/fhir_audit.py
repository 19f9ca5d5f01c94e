"""GET /fhir/AuditEvent: the audit trail as FHIR R4 AuditEvent resources (IHE BALP),
for auditors (the journey/audit.read scope). Declared before the generic /fhir/{type}
routes, which would take its path."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from integration.access.audit import AuditWriter
from integration.access.audit_events import audit_event
from integration.access.scopes import Permission
from integration.api.deps import WITHOUT_NUL, ReadStoreDep
from integration.api.models import Bundle
from integration.api.responses import FhirResponse
from integration.api.routes.fhir import fhir_outcomes, journey_client, searchset
from integration.clock import day_bound
from integration.push.errors import FhirError
from integration.store import audit as audit_store

router = APIRouter(prefix="/fhir", tags=["fhir audit"], default_response_class=FhirResponse)
MOST = 1000


def date_range(values: list[str]) -> tuple[str | None, str | None]:
    """FHIR `date` parameters (ge, gt, le, lt, or a bare day) as a [since, until) range."""
    since: str | None = None
    until: str | None = None
    for value in values:
        prefix, text = (
            (value[:2], value[2:]) if value[:2] in ("ge", "gt", "le", "lt", "eq") else ("eq", value)
        )
        try:
            day = date.fromisoformat(text[:10])
        except ValueError:
            raise FhirError(
                400, "invalid", f"date: {value!r} is not a date (YYYY-MM-DD)", "date"
            ) from None
        if prefix in ("ge", "eq"):
            since = day_bound(day, end=False)
        if prefix == "gt":
            since = day_bound(day, end=True)
        if prefix in ("le", "eq"):
            until = day_bound(day, end=True)
        if prefix == "lt":
            until = day_bound(day, end=False)
    return since, until


@router.get(
    "/AuditEvent",
    summary="AuditEvent: who read or wrote whose data (auditors)",
    response_model=Bundle,
    responses=fhir_outcomes(400, 401, 403),
    dependencies=[Depends(journey_client(Permission.READ_AUDIT))],
)
async def audit_events(
    request: Request,
    engine: ReadStoreDep,
    patient: Annotated[
        str | None, Query(pattern=WITHOUT_NUL, description="A person id, or Patient/{id}")
    ] = None,
    date_: Annotated[
        list[str] | None,
        Query(alias="date", description="ge2026-01-01, lt2026-02-01, or a day (repeatable)"),
    ] = None,
    count: Annotated[int, Query(alias="_count", ge=1, le=MOST)] = 100,
) -> FhirResponse:
    """Newest first; an auditor sees every request up to this one."""
    since, until = date_range(date_ or [])
    writer: AuditWriter = request.app.state.audit

    def read() -> list[dict[str, Any]]:
        writer.flush()
        with engine.connect() as conn:
            person = patient.removeprefix("Patient/") if patient else None
            return audit_store.search(conn, person, since, until, count)

    rows = await asyncio.to_thread(read)
    return searchset(request, "AuditEvent", [(str(r["id"]), audit_event(r)) for r in rows])
