"""Webhook subscriptions: endpoints that receive the journey feed, signed per the
Standard Webhooks specification, delivered by `journey worker`."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import Response

from integration.access.population import population_json
from integration.api.deps import ManageSubscriptions, SendFeed, SettingsDep, StoreDep
from integration.api.openapi import problem
from integration.api.problems import ApiProblem
from integration.api.responses import OrjsonResponse
from integration.api.subscription_models import (
    DeadLettersPage,
    NewSubscription,
    Replayed,
    ReplayRequest,
    SecretRotated,
    SubscriptionCreated,
    SubscriptionsPage,
    SubscriptionView,
)
from integration.webhooks import subscriptions as service

router = APIRouter(tags=["subscriptions"])
SubscriptionId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
NO_SUBSCRIPTION = {
    **problem(400, "A parameter is invalid (the problem names it)"),
    **problem(404, "No subscription with this id"),
}
CONFIGURED = problem(409, "The subscription is kept in the config file: change it there")


def _not_found(exc: service.UnknownSubscription) -> ApiProblem:
    return ApiProblem(404, "Not Found", str(exc))


@router.post(
    "/subscriptions",
    status_code=201,
    response_model=SubscriptionCreated,
    responses=problem(400, "An invalid URL, event type, source name or payload"),
)
def create_subscription(
    body: NewSubscription, engine: StoreDep, settings: SettingsDep, caller: SendFeed
) -> OrjsonResponse:
    """Subscribe an endpoint to the feed. The answer holds the `whsec_` secret that signs
    every delivery; it is shown only here (rotate it to get a new one)."""
    try:
        spec = service.checked_spec(
            body.url,
            body.types,
            body.sources,
            body.people,
            body.concerns,
            body.payload,
            body.description,
        )
    except service.InvalidSubscription as exc:
        raise ApiProblem(
            400,
            "Bad Request",
            str(exc),
            invalid_params=[{"in": "body", "name": exc.field, "reason": exc.reason}],
        ) from None
    owned = replace(
        spec,
        client_id=caller.client_id,
        client_population=population_json(caller.population),
    )
    created = service.create(engine, owned, body.start)
    view = service.status(engine, created.subscription.id, settings.webhook_give_up_hours)
    return OrjsonResponse(
        {**view, "secret": created.secret},
        status_code=201,
        headers={"Location": f"/subscriptions/{created.subscription.id}"},
    )


@router.get("/subscriptions", response_model=SubscriptionsPage)
def list_subscriptions(
    engine: StoreDep, settings: SettingsDep, caller: ManageSubscriptions
) -> OrjsonResponse:
    """Every subscription with its delivery state: position, failures, dead letters (a
    client limited to a population: those it created)."""
    return OrjsonResponse(
        {"items": service.statuses(engine, settings.webhook_give_up_hours, caller)}
    )


@router.get(
    "/subscriptions/{subscription_id}", response_model=SubscriptionView, responses=NO_SUBSCRIPTION
)
def read_subscription(
    subscription_id: SubscriptionId,
    engine: StoreDep,
    settings: SettingsDep,
    caller: ManageSubscriptions,
) -> OrjsonResponse:
    try:
        service.get(engine, subscription_id, caller=caller)
        return OrjsonResponse(
            service.status(engine, subscription_id, settings.webhook_give_up_hours)
        )
    except service.UnknownSubscription as exc:
        raise _not_found(exc) from None


@router.delete(
    "/subscriptions/{subscription_id}",
    status_code=204,
    responses={**NO_SUBSCRIPTION, **CONFIGURED},
)
def delete_subscription(
    subscription_id: SubscriptionId, engine: StoreDep, caller: ManageSubscriptions
) -> Response:
    """Stop delivering to the endpoint; its dead letters go too."""
    try:
        service.get(engine, subscription_id, caller=caller)
        service.remove(engine, subscription_id)
    except service.UnknownSubscription as exc:
        raise _not_found(exc) from None
    except service.ManagedByConfig as exc:
        raise ApiProblem(409, "Conflict", str(exc)) from None
    return Response(status_code=204)


@router.post(
    "/subscriptions/{subscription_id}/replay",
    response_model=Replayed,
    responses={
        **NO_SUBSCRIPTION,
        **problem(400, "An event id this feed never issued, or an invalid parameter"),
        **problem(410, "The event is past the feed's retention"),
    },
)
def replay_subscription(
    subscription_id: SubscriptionId,
    body: ReplayRequest,
    engine: StoreDep,
    caller: SendFeed,
) -> OrjsonResponse:
    """Deliver again from an event on (dead letters included), at once: failures and
    backoff are cleared. Receivers drop the repeats by webhook-id."""
    try:
        service.get(engine, subscription_id, caller=caller)
        position = service.replay(engine, subscription_id, body.from_event)
    except service.UnknownSubscription as exc:
        raise _not_found(exc) from None
    except service.NotInFeed as exc:
        if exc.past_retention:
            raise ApiProblem(410, "Gone", str(exc)) from None
        raise ApiProblem(400, "Bad Request", str(exc)) from None
    return OrjsonResponse(
        {"id": subscription_id, "delivered_up_to": f"evt_{position}" if position else None}
    )


@router.post(
    "/subscriptions/{subscription_id}/rotate-secret",
    response_model=SecretRotated,
    responses={**NO_SUBSCRIPTION, **CONFIGURED},
)
def rotate_secret(
    subscription_id: SubscriptionId,
    engine: StoreDep,
    settings: SettingsDep,
    caller: ManageSubscriptions,
) -> OrjsonResponse:
    """A new signing secret. For `webhook_secret_overlap_hours` each delivery carries a
    signature with the old secret and one with the new, so the receiver can switch
    without missing a delivery."""
    try:
        service.get(engine, subscription_id, caller=caller)
        secret, until = service.rotate(
            engine, subscription_id, settings.webhook_secret_overlap_hours
        )
    except service.UnknownSubscription as exc:
        raise _not_found(exc) from None
    except service.ManagedByConfig as exc:
        raise ApiProblem(409, "Conflict", str(exc)) from None
    return OrjsonResponse({"id": subscription_id, "secret": secret, "previous_valid_until": until})


@router.get(
    "/subscriptions/{subscription_id}/dead-letters",
    response_model=DeadLettersPage,
    responses=NO_SUBSCRIPTION,
)
def list_dead_letters(
    subscription_id: SubscriptionId, engine: StoreDep, caller: ManageSubscriptions
) -> OrjsonResponse:
    """Events given up on after the endpoint failed past the give-up time, oldest first
    (replay from the first to deliver them again)."""
    try:
        service.get(engine, subscription_id, caller=caller)
        return OrjsonResponse({"items": service.dead_letters(engine, subscription_id)})
    except service.UnknownSubscription as exc:
        raise _not_found(exc) from None
