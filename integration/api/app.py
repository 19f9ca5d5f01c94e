"""The FastAPI application: builds the app and includes the routers, nothing more."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline
from sqlalchemy import Engine

from integration.access.audit import AuditWriter
from integration.access.rate_limit import RateLimiter
from integration.api.audit_trail import install_audit_trail
from integration.api.body_limit import BodyLimit
from integration.api.boundary import install_error_boundary
from integration.api.deps import authenticator_of
from integration.api.latency import install_request_latency
from integration.api.metrics_registry import metrics_registry
from integration.api.openapi import install_openapi
from integration.api.problems import install_problem_handlers
from integration.api.request_id import install_request_id
from integration.api.responses import OrjsonResponse
from integration.api.routes import (
    feed,
    fhir,
    fhir_audit,
    fhir_subscriptions,
    health,
    metrics,
    outcomes,
    people,
    purge,
    quarantine,
    sources,
    subscriptions,
)
from integration.api.time_limit import TimeLimit
from integration.config import Settings, load_settings
from integration.gc_policy import freeze_what_is_loaded
from integration.journey.rule_packs import store_pack
from integration.journey.upkeep import Upkeep
from integration.push.service import PushService
from integration.push_clients import load_push_keys
from integration.store.engine import open_configured_store
from integration.store.wal import WalCheckpointer
from integration.ui.routes import install_ui
from integration.webhooks.subscriptions import apply_config

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None, engine: Engine | None = None, server: bool = False
) -> FastAPI:
    """The app; `server` for `journey serve`'s own process, which sets aside from garbage
    collection what is loaded at start (`freeze_what_is_loaded`). Not for an app among
    many in one process (tests): what it sets aside is never collected."""
    settings = settings or load_settings()
    owns_engine = engine is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = engine or open_configured_store(settings)
        app.state.read_engine = app.state.engine.execution_options(isolation_level="AUTOCOMMIT")
        app.state.push = PushService(app.state.engine, store_pack(app.state.engine), settings)
        apply_config(app.state.engine, settings.subscriptions, settings.config_file)
        checkpointer = WalCheckpointer(app.state.engine)
        checkpointer.start()
        upkeep = Upkeep(
            app.state.engine,
            store_pack,
            settings.feed_retention_days,
            audit_retention_days=settings.audit_retention_days,
            busy=app.state.activity.busy,
            share=settings.upkeep_share,
        )
        upkeep.start()
        app.state.audit.start(app.state.engine)
        if server:
            frozen = freeze_what_is_loaded()
            log.info("%d objects loaded at start set aside from garbage collection", frozen)
        yield
        app.state.audit.stop()
        upkeep.stop()
        checkpointer.stop()
        if owns_engine:
            app.state.engine.dispose()

    # /docs and /redoc from files the app serves itself (fastapi-offline ships Swagger UI
    # and ReDoc), not from a CDN: the docs work where the API has no way out.
    app = FastAPIOffline(
        title="fhir-journey",
        summary="Patient journeys (diagnose, treat, keep well) integrated from FHIR R4 sources",
        version="0.1.0",
        default_response_class=OrjsonResponse,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.running_syncs = {}
    app.state.sync_tasks = set()
    app.state.push_keys = load_push_keys(settings.push_clients, settings.config_file)
    app.state.authenticator = authenticator_of(settings)
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID", "If-Match"],
            expose_headers=["Location", "ETag", "Retry-After", "X-Request-ID"],
        )
    if engine is not None:
        app.state.engine = engine
        app.state.push = PushService(engine, store_pack(engine), settings)
    app.state.audit = AuditWriter()
    # Inside the audit trail, which so records a read cut short as its 503.
    app.add_middleware(TimeLimit, seconds=settings.request_time_limit_seconds)
    app.add_middleware(BodyLimit, limit=settings.max_request_bytes)
    if settings.audit:
        install_audit_trail(app, app.state.audit)
    install_problem_handlers(app)
    install_error_boundary(app)
    app.state.metrics = metrics_registry(
        lambda: app.state.read_engine, [source.name for source in settings.sources]
    )
    # Outside the error boundary, so a 500 is timed and counted too; the request id
    # outermost, so every line logged while answering carries it.
    app.state.activity = install_request_latency(app, app.state.metrics)
    install_request_id(app)
    install_openapi(app)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(people.router)
    app.include_router(outcomes.router)
    app.include_router(feed.router)
    app.include_router(subscriptions.router)
    app.include_router(sources.router)
    app.include_router(quarantine.router)
    app.include_router(purge.router)
    # Before the generic /fhir/{type} routes, which would take its paths.
    app.include_router(fhir_subscriptions.router)
    app.include_router(fhir_audit.router)
    app.include_router(fhir.router)
    install_ui(app)
    return app
