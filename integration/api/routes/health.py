"""Liveness (no key needed) and a status view of the store (key needed)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from integration.api.deps import ReadOperations, ReadStoreDep
from integration.api.models import Health, StoreStatus
from integration.api.responses import OrjsonResponse
from integration.store.queries import store_status

router = APIRouter()


@router.get(
    "/healthz",
    response_model=Health,
    tags=["health"],
    responses={503: {"model": Health, "description": "The store cannot be reached"}},
)
def healthz(engine: ReadStoreDep) -> OrjsonResponse:
    """Is the service up and can it reach its store? No API key needed."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return OrjsonResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    return OrjsonResponse({"status": "ok", "database": "ok"})


@router.get("/status", response_model=StoreStatus, tags=["health"])
def status(engine: ReadStoreDep, _caller: ReadOperations) -> OrjsonResponse:
    """What the store holds: people, resources per type and source, records per job,
    open quarantine entries and resources waiting for derivation."""
    with engine.connect() as conn:
        body: dict[str, Any] = store_status(conn)
    return OrjsonResponse(body)
