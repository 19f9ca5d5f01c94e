"""Managing webhook subscriptions, for the API, the CLI and the config alike: checked
specs, new ids and secrets, rotation, replay, and the status an operator reads."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from sqlalchemy import Connection, Engine

from integration.access.principal import Principal
from integration.clock import utc_now
from integration.errors import IntegrationError
from integration.secrets import read_secret
from integration.source_names import is_source_name
from integration.store import feed as feed_store
from integration.store import webhooks as store
from integration.store.leases import later
from integration.webhooks.config import SubscriptionConfig
from integration.webhooks.signing import check_secret, new_secret

Start = Literal["now", "beginning"]


class InvalidSubscription(IntegrationError):
    """A subscription's setting is not one this product can honour; names the field."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class UnknownSubscription(IntegrationError):
    def __init__(self, subscription_id: str) -> None:
        super().__init__(f"no webhook subscription {subscription_id!r}")
        self.subscription_id = subscription_id


class NotInFeed(IntegrationError):
    """A replay from an event the feed does not hold (never issued, or past retention)."""

    def __init__(self, event_id: str, reason: str, past_retention: bool) -> None:
        super().__init__(f"event {event_id!r}: {reason}")
        self.event_id = event_id
        self.past_retention = past_retention


class ManagedByConfig(IntegrationError):
    def __init__(self, subscription_id: str) -> None:
        super().__init__(
            f"webhook subscription {subscription_id!r} is kept in the config file's "
            "[[subscriptions]]: change it there"
        )


def checked_spec(
    url: str,
    types: Sequence[str] = (),
    sources: Sequence[str] = (),
    people: Sequence[str] = (),
    concerns: Sequence[str] = (),
    payload: str = "thin",
    description: str | None = None,
) -> store.SubscriptionSpec:
    """A spec whose every part is valid, else InvalidSubscription naming the first bad one."""
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:  # "http://[", a port that is no number
        raise InvalidSubscription("url", "not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise InvalidSubscription("url", "an absolute http or https URL is required")
    if parts.username or parts.password:
        raise InvalidSubscription("url", "credentials in the URL are not kept: sign instead")
    unknown = sorted(set(types) - set(feed_store.EVENT_TYPES))
    if unknown:
        raise InvalidSubscription(
            "types",
            f"unknown event type {unknown[0]!r} (one of {', '.join(feed_store.EVENT_TYPES)})",
        )
    bad_source = next((s for s in sources if not is_source_name(s)), None)
    if bad_source is not None:
        raise InvalidSubscription("sources", f"{bad_source!r} is not a source name")
    if payload not in ("thin", "full"):
        raise InvalidSubscription("payload", "thin or full")
    return store.SubscriptionSpec(
        url, tuple(types), tuple(sources), tuple(people), tuple(concerns), payload, description
    )


def _start_position(conn: Connection, start: Start) -> int:
    low, high = feed_store.bounds(conn)
    return high if start == "now" else max(low - 1, 0)


@dataclass(frozen=True, slots=True)
class Created:
    subscription: store.Subscription
    secret: str


def create(engine: Engine, spec: store.SubscriptionSpec, start: Start = "now") -> Created:
    """A new subscription with a new id and secret, delivering events from `start`."""
    secret = new_secret()
    with engine.begin() as conn:
        made = store.create(
            conn,
            "whk_" + secrets.token_hex(8),
            spec,
            secret,
            "api",
            _start_position(conn, start),
            utc_now(),
        )
    return Created(made, secret)


def create_fhir(
    engine: Engine, spec: store.SubscriptionSpec, channel: store.FhirChannel
) -> store.Subscription:
    """A FHIR Subscription: delivered from now, after a handshake with its endpoint."""
    with engine.begin() as conn:
        return store.create(
            conn,
            "fhir-" + secrets.token_hex(8),
            spec,
            new_secret(),
            "api",
            _start_position(conn, "now"),
            utc_now(),
            channel,
        )


def apply_config(
    engine: Engine, configured: Sequence[SubscriptionConfig], config_file: str | None
) -> None:
    """Keep the config's subscriptions in the store: new ones created, the others'
    settings brought up to date (their position and delivery state stay)."""
    file = config_file or "settings"
    wanted = []
    for index, table in enumerate(configured):
        where = f"{file}: subscriptions[{index}] (subscription {table.name!r})"
        secret = check_secret(
            read_secret(where, "secret", table.secret_env, table.secret_file), where
        )
        try:
            spec = checked_spec(
                table.url,
                table.types,
                table.sources,
                table.people,
                table.concerns,
                table.payload,
                table.description,
            )
        except InvalidSubscription as exc:
            raise InvalidSubscription(f"{where}: {exc.field}", exc.reason) from None
        wanted.append((table, spec, secret))
    if not wanted:
        return
    with engine.begin() as conn:
        for table, spec, secret in wanted:
            position = _start_position(conn, table.start)
            kept = store.ensure(conn, table.name, spec, secret, position, utc_now())
            if kept.managed_by != "config":
                raise InvalidSubscription(
                    f"{file}: subscriptions (subscription {table.name!r})",
                    "an API-made subscription has this id already",
                )
            store.update_spec(conn, table.name, spec, secret)


def get(
    engine: Engine,
    subscription_id: str,
    kind: str = store.WEBHOOK,
    caller: Principal | None = None,
) -> store.Subscription:
    """The subscription of this kind (webhooks at /subscriptions, FHIR ones at /fhir),
    if `caller` (when given) may manage it."""
    with engine.connect() as conn:
        found = store.load(conn, subscription_id)
    if found is None or found.kind != kind or (caller and not manages(caller, found)):
        raise UnknownSubscription(subscription_id)
    return found


def manages(caller: Principal, subscription: store.Subscription) -> bool:
    """A client limited to a population manages only the subscriptions it created (the
    others' filters and URLs are about people it may not see); any other manages all."""
    return caller.population is None or subscription.client_id == caller.client_id


def remove(engine: Engine, subscription_id: str, kind: str = store.WEBHOOK) -> None:
    if get(engine, subscription_id, kind).managed_by == "config":
        raise ManagedByConfig(subscription_id)
    with engine.begin() as conn:
        store.remove(conn, subscription_id)


def rotate(engine: Engine, subscription_id: str, overlap_hours: float) -> tuple[str, str]:
    """A new secret, and until when the old one signs too: for `overlap_hours` each
    delivery carries both signatures, so receivers can switch without missing one."""
    if get(engine, subscription_id).managed_by == "config":
        raise ManagedByConfig(subscription_id)
    secret = new_secret()
    until = later(utc_now(), timedelta(hours=overlap_hours).total_seconds())
    with engine.begin() as conn:
        store.rotate_secret(conn, subscription_id, secret, until)
    return secret, until


def replay(engine: Engine, subscription_id: str, from_event: str | None) -> int:
    """Deliver again from `from_event` (an event id, `evt_N`) on, or from the oldest
    event the feed holds; returns the position set. Events delivered since are
    delivered again, with their own ids (receivers drop the repeats they keep)."""
    get(engine, subscription_id)
    with engine.begin() as conn:
        low, high = feed_store.bounds(conn)
        if from_event is None:
            position = max(low - 1, 0)
        else:
            text = from_event.removeprefix("evt_")
            if not text.isdigit() or int(text) > high or int(text) < 1:
                raise NotInFeed(from_event, "not an event id of this feed", False)
            if int(text) < low:
                raise NotInFeed(from_event, "past the feed's retention", True)
            position = int(text) - 1
        store.replay(conn, subscription_id, position)
    return position


def status_json(
    subscription: store.Subscription, high: int, give_up_hours: float
) -> dict[str, Any]:
    """What an operator reads about a subscription (never its secret)."""
    if subscription.failing_since is None:
        state = "delivering"
    else:
        give_up_at = later(subscription.failing_since, give_up_hours * 3600)
        state = "dead_lettering" if utc_now() >= give_up_at else "retrying"
    return {
        "id": subscription.id,
        "url": subscription.url,
        "description": subscription.description,
        "types": list(subscription.types),
        "sources": list(subscription.sources),
        "people": list(subscription.people),
        "concerns": list(subscription.concerns),
        "payload": subscription.payload,
        "managed_by": subscription.managed_by,
        "created_at": subscription.created_at,
        "state": state,
        "delivered_up_to": f"evt_{subscription.position}" if subscription.position else None,
        "events_behind_at_most": max(high - subscription.position, 0),
        "delivered": subscription.delivered,
        "dead_letters": subscription.dead_lettered,
        "attempts": subscription.attempts,
        "next_attempt_at": subscription.next_attempt_at,
        "failing_since": subscription.failing_since,
        "last_error": subscription.last_error,
        "last_delivered_at": subscription.last_delivered_at,
        "secret_rotating_until": subscription.previous_secret_until
        if subscription.previous_secret_until and utc_now() < subscription.previous_secret_until
        else None,
        "held_by": subscription.lease_owner,
    }


def statuses(
    engine: Engine, give_up_hours: float, caller: Principal | None = None
) -> list[dict[str, Any]]:
    """Every webhook subscription's status (FHIR Subscriptions are read at /fhir), or
    those `caller` manages."""
    with engine.connect() as conn:
        high = feed_store.bounds(conn)[1]
        kept = store.all_subscriptions(conn)
    return [
        status_json(s, high, give_up_hours)
        for s in kept
        if not s.is_fhir and (caller is None or manages(caller, s))
    ]


def status(engine: Engine, subscription_id: str, give_up_hours: float) -> dict[str, Any]:
    with engine.connect() as conn:
        high = feed_store.bounds(conn)[1]
    return status_json(get(engine, subscription_id), high, give_up_hours)


def dead_letters(
    engine: Engine, subscription_id: str, after: int = 0, limit: int = 100
) -> list[dict[str, Any]]:
    get(engine, subscription_id)
    with engine.connect() as conn:
        rows = store.dead_letters(conn, subscription_id, after, limit)
    return [
        {
            "id": row["id"],
            "event": f"evt_{row['seq']}",
            "type": row["event_type"],
            "failing_since": row["failing_since"],
            "given_up_at": row["given_up_at"],
            "attempts": row["attempts"],
            "last_error": row["last_error"],
        }
        for row in rows
    ]
