"""Configured FHIR sources: their sync state, and a way to start a sync."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request

from integration.api.deps import ReadOperations, ReadStoreDep, SettingsDep, StartSyncs, StoreDep
from integration.api.models import SourcesPage, SyncStarted
from integration.api.openapi import problem
from integration.api.problems import ApiProblem
from integration.api.responses import OrjsonResponse
from integration.clock import utc_now
from integration.logs import exception_trail
from integration.sources import SourceConfig
from integration.store.bulk_state import exports_in_progress
from integration.store.errors import describe_error
from integration.store.leases import SyncAlreadyRunning, all_units
from integration.store.populations import roster_counts
from integration.store.sync_state import states_by_source
from integration.sync.leased import HeldUnits, default_owner
from integration.sync.runners import sync_source
from integration.sync.sources_view import sources_view

router = APIRouter(tags=["sources"])
log = logging.getLogger(__name__)


def _running(request: Request) -> dict[str, str]:
    running: dict[str, str] = request.app.state.running_syncs
    return running


@router.get("/sources", response_model=SourcesPage)
def list_sources(
    request: Request, engine: ReadStoreDep, settings: SettingsDep, _caller: ReadOperations
) -> OrjsonResponse:
    """Each configured source with, per resource type, its checkpoint, last sync,
    counts and last error; `running_since` while a sync is under way; for a bulk
    source, `export_in_progress` while an export is not finished (the next sync
    resumes it); `worker_units` once `journey worker` runs: who holds each unit's
    lease and until when, its next run, failures in a row and last error."""
    configured = settings.sources
    with engine.connect() as conn:
        by_source = states_by_source(conn)
        exports = exports_in_progress(conn)
        units = all_units(conn)
        rosters = roster_counts(conn)
    running = _running(request)
    items = [
        {**view, "running_since": running.get(view["name"])}
        for view in sources_view(configured, by_source, exports, units, rosters)
    ]
    return OrjsonResponse({"items": items})


@router.post(
    "/sources/{name}/sync",
    status_code=202,
    response_model=SyncStarted,
    responses={
        **problem(400, "A parameter is invalid (the problem names it)"),
        **problem(404, "No configured source of that name"),
        **problem(
            409, "A sync of that source is already running (started here, by the CLI or a worker)"
        ),
    },
)
async def start_sync(
    name: str,
    request: Request,
    engine: StoreDep,
    settings: SettingsDep,
    _caller: StartSyncs,
    full: bool = False,
) -> OrjsonResponse:
    """Start a sync of one source in the background; follow it in GET /sources."""
    chosen = [s for s in settings.sources if s.name == name]
    if not chosen:
        raise ApiProblem(404, "Not Found", f"no configured source named {name}")
    try:
        held = await asyncio.to_thread(
            HeldUnits.claim_source, engine, settings, chosen[0], default_owner("api")
        )
    except SyncAlreadyRunning as exc:
        # Started here, by `journey sync`, or a worker holding one of its units.
        raise ApiProblem(409, "Conflict", str(exc)) from None
    running = _running(request)
    running[name] = utc_now()
    tasks: set[asyncio.Task[None]] = request.app.state.sync_tasks
    task = asyncio.create_task(_run(request, chosen[0], full, held))
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return OrjsonResponse(
        {"source": name, "running_since": running[name], "status_url": "/sources"},
        status_code=202,
        headers={"Location": "/sources"},
    )


async def _run(request: Request, source: SourceConfig, full: bool, held: HeldUnits) -> None:
    settings = request.app.state.settings
    try:
        # The pack the app's pushes map with, not a second load (a journey update
        # switches to the store's pack should another process have set a new one).
        pack = request.app.state.push.pack
        await held.run_then_release(
            sync_source(request.app.state.engine, pack, settings, source, full=full)
        )
    except Exception as exc:
        # The per-type outcome is already in sync_state; this is for what stopped it whole.
        # Type and frames only: the message (a driver's, a server's) can quote data.
        log.error(
            "sync of source %s stopped: %s\n%s",
            source.name,
            describe_error(exc),
            exception_trail(exc),
        )
    finally:
        _running(request).pop(source.name, None)
