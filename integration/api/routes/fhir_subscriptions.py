"""FHIR R4 topic-based Subscriptions (Subscriptions R5 Backport IG) on /fhir: the
journey-change SubscriptionTopic, Subscription create/read/search/delete, $status and
$events, and the EpisodeOfCare read their notifications point at. For journey
readers (an API key); `journey worker` sends the notifications.

Declared before the generic /fhir/{type} routes, which would take these paths."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from integration.access.population import population_json
from integration.access.principal import Principal
from integration.access.scopes import Permission
from integration.access.visibility import readable_by, visible_person
from integration.api.deps import ReadStoreDep, SettingsDep, StoreDep
from integration.api.models import Bundle, FhirResource
from integration.api.responses import FhirResponse
from integration.api.routes.fhir import FHIR_ID, fhir_outcomes, journey_client, read_json, searchset
from integration.clock import utc_now
from integration.journey.episode_of_care import episode_of_care
from integration.journey.episodes import episodes_of_person
from integration.journey.rule_packs import store_pack
from integration.push.errors import FhirError
from integration.store import webhooks as store
from integration.store.feed import EventFilter
from integration.store.schema import episodes as episodes_table
from integration.webhooks import fhir_subscriptions as fhir
from integration.webhooks import subscriptions as service

router = APIRouter(prefix="/fhir", tags=["fhir subscriptions"], default_response_class=FhirResponse)
# Every route but the EpisodeOfCare read manages subscriptions; creating one, or
# reading its events again, sends or shows the feed: that needs the feed too.
MANAGES = [Depends(journey_client(Permission.MANAGE_SUBSCRIPTIONS))]
Manager = Annotated[Principal, Depends(journey_client(Permission.MANAGE_SUBSCRIPTIONS))]
Sender = Annotated[
    Principal, Depends(journey_client(Permission.MANAGE_SUBSCRIPTIONS, Permission.READ_FEED))
]
SubscriptionId = Annotated[str, Path(pattern=FHIR_ID)]
MAX_EVENTS = 1000


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/fhir"


def _held(engine: Any, subscription_id: str, caller: Principal) -> store.Subscription:
    """The FHIR Subscription, if this client may manage it; else 404."""
    try:
        return service.get(engine, subscription_id, store.FHIR, caller)
    except service.UnknownSubscription:
        raise FhirError(404, "not-found", f"no Subscription/{subscription_id}") from None


@router.get(
    "/SubscriptionTopic",
    summary="The journey's SubscriptionTopic",
    response_model=Bundle,
    responses=fhir_outcomes(401, 403),
    dependencies=MANAGES,
)
def topics(request: Request) -> FhirResponse:
    topic = fhir.topic_resource()
    return searchset(request, "SubscriptionTopic", [(topic["id"], topic)])


@router.get(
    "/SubscriptionTopic/journey-change",
    summary="The journey-change SubscriptionTopic (R4B shape)",
    response_model=FhirResource,
    responses=fhir_outcomes(401, 403),
    dependencies=MANAGES,
)
def topic() -> FhirResponse:
    return FhirResponse(fhir.topic_resource())


@router.post(
    "/Subscription",
    status_code=201,
    summary="Subscribe a rest-hook endpoint to the journey-change topic",
    response_model=FhirResource,
    responses=fhir_outcomes(400, 401, 403, 413, 415),
)
async def create_subscription(
    request: Request, engine: StoreDep, settings: SettingsDep, caller: Sender
) -> FhirResponse:
    """An R4 Subscription per the Backport IG: `criteria` the topic's canonical, filters
    as `backport-filter-criteria` (type=, source=, person=, concern=), a rest-hook
    channel, content (empty, id-only, full-resource) and heartbeat period as the IG's
    extensions. It starts `requested`; a handshake to the endpoint makes it `active`."""
    resource = await read_json(request, settings.max_push_bytes)
    try:
        spec, channel, _reason = fhir.read_subscription(resource)
        spec = service.checked_spec(
            spec.url,
            spec.types,
            spec.sources,
            spec.people,
            spec.concerns,
            spec.payload,
            spec.description,
        )
    except fhir.InvalidFhirSubscription as exc:
        raise FhirError(400, "invalid", exc.reason, exc.expression) from None
    except service.InvalidSubscription as exc:
        element = {"url": "Subscription.channel.endpoint"}.get(exc.field, "Subscription.criteria")
        raise FhirError(400, "invalid", exc.reason, element) from None
    spec = replace(
        spec, client_id=caller.client_id, client_population=population_json(caller.population)
    )
    made = await asyncio.to_thread(service.create_fhir, engine, spec, channel)
    return FhirResponse(
        fhir.subscription_resource(made, _base(request)),
        status_code=201,
        headers={"Location": f"{_base(request)}/Subscription/{made.id}"},
    )


@router.get(
    "/Subscription",
    summary="Every FHIR Subscription",
    response_model=Bundle,
    responses=fhir_outcomes(401, 403),
)
def search_subscriptions(request: Request, engine: ReadStoreDep, caller: Manager) -> FhirResponse:
    with engine.connect() as conn:
        kept = store.all_subscriptions(conn)
    held = [s for s in kept if s.is_fhir and service.manages(caller, s)]
    base = _base(request)
    return searchset(
        request, "Subscription", [(s.id, fhir.subscription_resource(s, base)) for s in held]
    )


@router.get(
    "/Subscription/{subscription_id}",
    response_model=FhirResource,
    responses=fhir_outcomes(400, 401, 403, 404),
)
def read_subscription(
    subscription_id: SubscriptionId, request: Request, engine: ReadStoreDep, caller: Manager
) -> FhirResponse:
    held = _held(engine, subscription_id, caller)
    return FhirResponse(fhir.subscription_resource(held, _base(request)))


@router.delete(
    "/Subscription/{subscription_id}",
    status_code=204,
    responses=fhir_outcomes(400, 401, 403, 404),
)
def delete_subscription(
    subscription_id: SubscriptionId, engine: StoreDep, caller: Manager
) -> Response:
    try:
        service.get(engine, subscription_id, store.FHIR, caller)
        service.remove(engine, subscription_id, store.FHIR)
    except service.UnknownSubscription:
        raise FhirError(404, "not-found", f"no Subscription/{subscription_id}") from None
    return Response(status_code=204)


@router.get(
    "/Subscription/{subscription_id}/$status",
    summary="The Subscription's status (query-status)",
    response_model=Bundle,
    responses=fhir_outcomes(400, 401, 403, 404),
)
def subscription_status(
    subscription_id: SubscriptionId, request: Request, engine: ReadStoreDep, caller: Manager
) -> FhirResponse:
    held = _held(engine, subscription_id, caller)
    status = fhir.status_parameters(held, _base(request), "query-status")
    return FhirResponse(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": 1,
            "entry": [
                {
                    "fullUrl": f"urn:uuid:{status['id']}",
                    "resource": status,
                    "search": {"mode": "match"},
                }
            ],
        }
    )


@router.get(
    "/Subscription/{subscription_id}/$events",
    summary="Events notified before, by number (query-event)",
    response_model=Bundle,
    responses=fhir_outcomes(400, 401, 403, 404),
)
def subscription_events(
    subscription_id: SubscriptionId,
    request: Request,
    engine: ReadStoreDep,
    caller: Sender,
    events_since: Annotated[int | None, Query(alias="eventsSinceNumber", ge=1)] = None,
    events_until: Annotated[int | None, Query(alias="eventsUntilNumber", ge=1)] = None,
    content: Annotated[Literal["empty", "id-only", "full-resource"] | None, Query()] = None,
) -> FhirResponse:
    """The events this Subscription has notified (or given up on), from
    `eventsSinceNumber` (default: 1) to `eventsUntilNumber`, at most 1,000, as a
    query-event notification: how a client fills a gap in the event numbers."""
    held = _held(engine, subscription_id, caller)
    with engine.connect() as conn:
        # As a delivery now would: without anyone a Consent withholds since, from the
        # endpoint, its creator or this client, and within this client's population.
        recipients = [f"subscription:{held.id}", caller.client_id]
        if held.client_id:
            recipients.append(held.client_id)
        readers = readable_by(conn, recipients, caller.population).selecting(EventFilter())
        found = store.numbered_events(
            conn, subscription_id, events_since or 1, events_until, MAX_EVENTS, readers
        )
    events = [(number, fhir.with_payload(event)) for number, event in found]
    shown = held if content is None else _with_content(held, content)
    return FhirResponse(
        fhir.notification_bundle(shown, _base(request), "query-event", events, utc_now())
    )


def _with_content(subscription: store.Subscription, content: str) -> store.Subscription:
    return replace(subscription, fhir_content=content)


@router.get(
    "/EpisodeOfCare/{episode_id}",
    summary="EpisodeOfCare: one episode as FHIR R4 (what notifications point at)",
    response_model=FhirResource,
    responses=fhir_outcomes(400, 401, 403, 404),
)
async def read_episode(
    request: Request,
    episode_id: Annotated[str, Path(pattern=FHIR_ID)],
    engine: ReadStoreDep,
    reader: Annotated[Principal, Depends(journey_client(Permission.READ_PEOPLE))],
) -> FhirResponse:
    def read() -> dict[str, Any] | None:
        pack = store_pack(engine)
        with engine.connect() as conn:
            person = conn.execute(
                episodes_table.select()
                .with_only_columns(episodes_table.c.person_id)
                .where(episodes_table.c.id == episode_id)
            ).scalar()
            # Asked also for an episode that does not exist: the same statements run.
            resolved = visible_person(conn, reader, person or "")
            if resolved is None:
                return None
            for episode in episodes_of_person(conn, resolved, pack, utc_now()):
                if episode["id"] == episode_id:
                    request.state.person = resolved  # for the audit trail
                    return episode_of_care(resolved, episode)
        return None

    found = await asyncio.to_thread(read)
    if found is None:
        raise FhirError(404, "not-found", f"no EpisodeOfCare/{episode_id}")
    return FhirResponse(found)
