"""Request and response documents of the webhook subscription routes."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from integration.store.feed import EVENT_TYPES

_NO_NUL = r"^[^\x00]*$"
_ListOfIds = list[Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=_NO_NUL)]]


class NewSubscription(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=1, max_length=2000, pattern=_NO_NUL, description="Where each event is POSTed"
    )
    types: _ListOfIds = Field(
        default_factory=list,
        max_length=len(EVENT_TYPES),
        description="Event types to deliver; none: all (" + ", ".join(EVENT_TYPES) + ")",
    )
    sources: _ListOfIds = Field(
        default_factory=list,
        max_length=200,
        description="Only events concerning these sources (records from them, people and "
        "episodes with data from them)",
    )
    people: _ListOfIds = Field(
        default_factory=list, max_length=1000, description="Only these people's events"
    )
    concerns: _ListOfIds = Field(
        default_factory=list,
        max_length=200,
        description="Only episode events of these concerns (e.g. depression, icd10cm:I10)",
    )
    payload: Literal["thin", "full"] = Field(
        default="thin", description="thin: type, ids, version, time; full: with the new form"
    )
    start: Literal["now", "beginning"] = Field(
        default="now", description="Deliver events from now on, or every event the feed holds"
    )
    description: str | None = Field(default=None, max_length=500, pattern=_NO_NUL)


class SubscriptionView(BaseModel):
    id: str
    url: str
    description: str | None
    types: list[str]
    sources: list[str]
    people: list[str]
    concerns: list[str]
    payload: str
    managed_by: str = Field(description="api, or config ([[subscriptions]]: change it there)")
    created_at: str
    state: Literal["delivering", "retrying", "dead_lettering"] = Field(
        description="retrying: the endpoint fails and its head event is retried with "
        "backoff; dead_lettering: it has failed past the give-up time, so each event it "
        "fails goes to the dead letters"
    )
    delivered_up_to: str | None = Field(description="Last event id delivered or passed over")
    events_behind_at_most: int = Field(
        description="Feed events after the position (the filters select some of them)"
    )
    delivered: int
    dead_letters: int
    attempts: int = Field(description="Failed attempts at the head event")
    next_attempt_at: str | None
    failing_since: str | None
    last_error: str | None
    last_delivered_at: str | None
    secret_rotating_until: str | None = Field(
        description="Until then each delivery is signed with the previous secret too"
    )
    held_by: str | None = Field(description="The worker delivering to it now")


class SubscriptionCreated(SubscriptionView):
    secret: str = Field(
        description="The whsec_ signing secret (Standard Webhooks); shown only now: keep it"
    )


class SubscriptionsPage(BaseModel):
    items: list[SubscriptionView]


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_event: str | None = Field(
        default=None,
        pattern=r"^evt_[0-9]{1,19}$",
        description="Deliver this event and every later one again; none: from the oldest "
        "event the feed holds",
    )


class Replayed(BaseModel):
    id: str
    delivered_up_to: str | None


class SecretRotated(BaseModel):
    id: str
    secret: str = Field(description="The new whsec_ secret; shown only now")
    previous_valid_until: str = Field(description="The old secret signs too until then")


class DeadLetter(BaseModel):
    id: int
    event: str
    type: str
    failing_since: str
    given_up_at: str
    attempts: int
    last_error: str | None


class DeadLettersPage(BaseModel):
    items: list[DeadLetter]
