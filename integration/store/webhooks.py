"""Webhook subscriptions as stored: each endpoint's filters, secrets, position in the
feed and delivery state, and the events given up on (dead letters).

A subscription is one endpoint's queue. A delivering process holds a lease on it
(as `journey worker` holds sync units), so two processes never deliver to one
endpoint at once and a dead process's endpoints are taken over when its lease runs
out. Every write of delivery state is conditional on the lease and on the position
the writer read: a replay or a takeover in between makes the write miss, and the
deliverer reads the subscription again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Connection, Row, and_, delete, func, or_, select, update

from integration.store import feed
from integration.store.schema import (
    feed_events,
    subscription_event_numbers,
    webhook_dead_letters,
    webhook_subscriptions,
)
from integration.store.upsert import insert_ignore

c = webhook_subscriptions.c
_LISTS = ("types", "sources", "people", "concerns")
WEBHOOK = "webhook"
FHIR = "fhir"


@dataclass(frozen=True, slots=True)
class FhirChannel:
    """A FHIR Subscription's rest-hook channel: what each notification carries
    (empty, id-only, full-resource), the headers it is sent with, the heartbeat."""

    content: str = "id-only"
    headers: tuple[str, ...] = ()
    heartbeat_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    url: str
    description: str | None
    types: tuple[str, ...]
    sources: tuple[str, ...]
    people: tuple[str, ...]
    concerns: tuple[str, ...]
    payload: str
    secret: str
    previous_secret: str | None
    previous_secret_until: str | None
    managed_by: str
    created_at: str
    position: int
    attempts: int
    next_attempt_at: str | None
    failing_since: str | None
    last_error: str | None
    last_delivered_at: str | None
    delivered: int
    dead_lettered: int
    lease_owner: str | None
    lease_until: str | None
    kind: str
    fhir_status: str | None
    fhir_content: str | None
    fhir_headers: tuple[str, ...]
    heartbeat_seconds: int | None
    last_sent_at: str | None
    events_numbered: int
    # The client that created it (None: the config file or the CLI), and its
    # population then (JSON; None: everyone).
    client_id: str | None = None
    client_population: str | None = None
    # Failed delivery attempts, ever.
    failures: int = 0

    @property
    def is_fhir(self) -> bool:
        return self.kind == FHIR

    @property
    def selects(self) -> feed.EventFilter:
        return feed.EventFilter(self.types, self.people, self.sources, self.concerns)

    def secrets(self, now: str) -> list[str]:
        """The secrets to sign with now: during a rotation's overlap, the old one too."""
        old = self.previous_secret
        until = self.previous_secret_until
        return [self.secret] + ([old] if old and until and now < until else [])


@dataclass(frozen=True, slots=True)
class SubscriptionSpec:
    """What a subscription's owner sets (through the API, the CLI or the config)."""

    url: str
    types: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    people: tuple[str, ...] = ()
    concerns: tuple[str, ...] = ()
    payload: str = "thin"
    description: str | None = None
    client_id: str | None = None
    client_population: str | None = None

    def columns(self) -> dict[str, Any]:
        lists = {name: orjson.dumps(sorted(set(getattr(self, name)))).decode() for name in _LISTS}
        return {
            "url": self.url,
            "payload": self.payload,
            "description": self.description,
            "client_id": self.client_id,
            "client_population": self.client_population,
            **lists,
        }


def _new_row(
    subscription_id: str,
    spec: SubscriptionSpec,
    secret: str,
    managed_by: str,
    position: int,
    now: str,
    fhir: FhirChannel | None = None,
) -> dict[str, Any]:
    row = {
        "id": subscription_id,
        "secret": secret,
        "managed_by": managed_by,
        "created_at": now,
        "position": position,
        "attempts": 0,
        "delivered": 0,
        "dead_lettered": 0,
        "failures": 0,
        "kind": WEBHOOK,
        "events_numbered": 0,
        **spec.columns(),
    }
    if fhir is not None:
        row |= {
            "kind": FHIR,
            # Requested until the handshake is answered (then active).
            "fhir_status": "requested",
            "fhir_content": fhir.content,
            "fhir_headers": orjson.dumps(list(fhir.headers)).decode(),
            "heartbeat_seconds": fhir.heartbeat_seconds,
        }
    return row


def create(
    conn: Connection,
    subscription_id: str,
    spec: SubscriptionSpec,
    secret: str,
    managed_by: str,
    position: int,
    now: str,
    fhir: FhirChannel | None = None,
) -> Subscription:
    row = _new_row(subscription_id, spec, secret, managed_by, position, now, fhir)
    conn.execute(webhook_subscriptions.insert().values(**row))
    made = load(conn, subscription_id)
    assert made is not None  # inserted just now, in this transaction
    return made


def ensure(
    conn: Connection,
    subscription_id: str,
    spec: SubscriptionSpec,
    secret: str,
    position: int,
    now: str,
) -> Subscription:
    """A configured subscription: created if absent (two processes starting at once
    both may try), then as it is kept."""
    row = _new_row(subscription_id, spec, secret, "config", position, now)
    insert_ignore(conn, webhook_subscriptions, [row], keys=("id",))
    kept = load(conn, subscription_id)
    assert kept is not None  # inserted now, or already there
    return kept


def update_spec(
    conn: Connection, subscription_id: str, spec: SubscriptionSpec, secret: str
) -> None:
    """A configured subscription's settings as the config now has them; its position and
    delivery state stay."""
    conn.execute(
        update(webhook_subscriptions)
        .where(c.id == subscription_id)
        .values(secret=secret, **spec.columns())
    )


def load(conn: Connection, subscription_id: str) -> Subscription | None:
    row = conn.execute(select(webhook_subscriptions).where(c.id == subscription_id)).first()
    return None if row is None else _subscription(row)


def all_subscriptions(conn: Connection) -> list[Subscription]:
    return [
        _subscription(row) for row in conn.execute(select(webhook_subscriptions).order_by(c.id))
    ]


def remove(conn: Connection, subscription_id: str) -> bool:
    conn.execute(
        delete(subscription_event_numbers).where(
            subscription_event_numbers.c.subscription_id == subscription_id
        )
    )
    conn.execute(
        delete(webhook_dead_letters).where(
            webhook_dead_letters.c.subscription_id == subscription_id
        )
    )
    return conn.execute(delete(webhook_subscriptions).where(c.id == subscription_id)).rowcount == 1


def rotate_secret(
    conn: Connection, subscription_id: str, secret: str, old_valid_until: str
) -> bool:
    """A new secret; the current one still signs (beside it) until `old_valid_until`."""
    return (
        conn.execute(
            update(webhook_subscriptions)
            .where(c.id == subscription_id)
            .values(
                previous_secret=c.secret,
                previous_secret_until=old_valid_until,
                secret=secret,
            )
        ).rowcount
        == 1
    )


def replay(conn: Connection, subscription_id: str, position: int) -> bool:
    """Deliver again every selected event after `position`, now; whoever holds the
    subscription notices at its next write."""
    n = subscription_event_numbers.c
    numbered_before = (
        select(func.count())
        .select_from(subscription_event_numbers)
        .where(n.subscription_id == subscription_id, n.seq <= position)
        .scalar_subquery()
    )
    return (
        conn.execute(
            update(webhook_subscriptions)
            .where(c.id == subscription_id)
            .values(
                position=position,
                attempts=0,
                next_attempt_at=None,
                failing_since=None,
                last_error=None,
                events_numbered=numbered_before,
            )
        ).rowcount
        == 1
    )


# Leases ------------------------------------------------------------------------------


def _free(now: str) -> ColumnElement[bool]:
    return or_(c.lease_until.is_(None), c.lease_until < now)


def claim(conn: Connection, owner: str, now: str, until: str, most: int) -> list[str]:
    """Take up to `most` subscriptions nobody holds; returns their ids."""
    free = [
        row.id
        for row in conn.execute(
            select(c.id)
            .where(_free(now))
            .order_by(c.id)
            .limit(most)
            .with_for_update(skip_locked=True)
        )
    ]
    taken: list[str] = []
    for subscription_id in free:
        claimed = conn.execute(
            update(webhook_subscriptions)
            .where(c.id == subscription_id, _free(now))
            .values(lease_owner=owner, lease_until=until)
        )
        if claimed.rowcount == 1:  # SQLite has no row locks: another may have won
            taken.append(subscription_id)
    return taken


def renew(conn: Connection, subscription_id: str, owner: str, until: str) -> bool:
    """Extend our lease; False when it is no longer ours (or the subscription is gone)."""
    held = conn.execute(
        update(webhook_subscriptions)
        .where(c.id == subscription_id, c.lease_owner == owner)
        .values(lease_until=until)
    )
    return held.rowcount == 1


def release(conn: Connection, owner: str) -> None:
    conn.execute(
        update(webhook_subscriptions)
        .where(c.lease_owner == owner)
        .values(lease_owner=None, lease_until=None)
    )


# Delivery state ----------------------------------------------------------------------


def _held_at(subscription: Subscription, owner: str) -> ColumnElement[bool]:
    return and_(
        c.id == subscription.id, c.lease_owner == owner, c.position == subscription.position
    )


def delivered(
    conn: Connection,
    subscription: Subscription,
    owner: str,
    seqs: Sequence[int],
    now: str,
) -> bool:
    """The endpoint took these selected events (in order, the last the newest). A FHIR
    subscription numbers them, each after the last it numbered."""
    values: dict[str, Any] = {
        "position": seqs[-1],
        "attempts": 0,
        "next_attempt_at": None,
        "failing_since": None,
        "last_error": None,
        "last_delivered_at": now,
        "delivered": c.delivered + len(seqs),
    }
    if subscription.is_fhir:
        values |= {
            "events_numbered": subscription.events_numbered + len(seqs),
            "fhir_status": "active",
            "last_sent_at": now,
        }
    if (
        conn.execute(
            update(webhook_subscriptions).where(_held_at(subscription, owner)).values(**values)
        ).rowcount
        != 1
    ):
        return False
    if subscription.is_fhir:
        _number(conn, subscription, seqs)
    return True


def _number(conn: Connection, subscription: Subscription, seqs: Sequence[int]) -> None:
    first = subscription.events_numbered + 1
    rows = [
        {"subscription_id": subscription.id, "number": first + i, "seq": seq}
        for i, seq in enumerate(seqs)
    ]
    # A replayed event keeps the number it was first notified under.
    insert_ignore(conn, subscription_event_numbers, rows, keys=("subscription_id", "number"))


def contacted(conn: Connection, subscription: Subscription, owner: str, now: str) -> bool:
    """A FHIR handshake or heartbeat was taken: the endpoint is active."""
    return (
        conn.execute(
            update(webhook_subscriptions)
            .where(_held_at(subscription, owner))
            .values(
                fhir_status="active",
                last_sent_at=now,
                attempts=0,
                next_attempt_at=None,
                failing_since=None,
                last_error=None,
            )
        ).rowcount
        == 1
    )


def numbered_events(
    conn: Connection,
    subscription_id: str,
    since: int,
    until: int | None,
    limit: int,
    readers: feed.EventFilter | None = None,
) -> list[tuple[int, dict[str, Any]]]:
    """(event number, feed event with payload) of a FHIR subscription's notified events
    from number `since` to `until`, oldest first; events past retention are left out,
    and so are those `readers` (Consents and a population, as now) does not select."""
    n = subscription_event_numbers.c
    query = (
        select(n.number, feed_events)
        .join(feed_events, feed_events.c.seq == n.seq)
        .where(n.subscription_id == subscription_id, n.number >= since)
        .order_by(n.number)
        .limit(limit)
    )
    if until is not None:
        query = query.where(n.number <= until)
    if readers is not None:
        query = query.where(*readers.where())
    found = []
    for row in conn.execute(query):
        event = dict(row._mapping)
        found.append((int(event.pop("number")), event))
    return found


def passed(conn: Connection, subscription: Subscription, owner: str, seq: int) -> bool:
    """No selected event up to `seq`: move past the ones it does not select."""
    return (
        conn.execute(
            update(webhook_subscriptions).where(_held_at(subscription, owner)).values(position=seq)
        ).rowcount
        == 1
    )


def failed(
    conn: Connection,
    subscription: Subscription,
    owner: str,
    error: str,
    now: str,
    next_attempt_at: str,
) -> bool:
    """The head event was not taken; try it again at `next_attempt_at`."""
    return (
        conn.execute(
            update(webhook_subscriptions)
            .where(_held_at(subscription, owner))
            .values(
                attempts=c.attempts + 1,
                failures=c.failures + 1,
                next_attempt_at=next_attempt_at,
                failing_since=func.coalesce(c.failing_since, now),
                last_error=error,
                fhir_status="error" if subscription.is_fhir else None,
            )
        ).rowcount
        == 1
    )


def dead_letter(
    conn: Connection,
    subscription: Subscription,
    owner: str,
    event: dict[str, Any],
    error: str,
    now: str,
) -> bool:
    """Give up on the head event (kept as a dead letter) and move past it. The endpoint
    stays failing (`failing_since` is kept) until a delivery succeeds."""
    moved = conn.execute(
        update(webhook_subscriptions)
        .where(_held_at(subscription, owner))
        .values(
            position=event["seq"],
            attempts=0,
            next_attempt_at=None,
            last_error=error,
            dead_lettered=c.dead_lettered + 1,
            # Giving up follows one more failed attempt, which `failed` did not count.
            failures=c.failures + 1,
            # A FHIR client finds the event it missed by its number ($events).
            events_numbered=c.events_numbered + (1 if subscription.is_fhir else 0),
        )
    )
    if moved.rowcount != 1:
        return False
    if subscription.is_fhir:
        _number(conn, subscription, [event["seq"]])
    conn.execute(
        webhook_dead_letters.insert().values(
            subscription_id=subscription.id,
            seq=event["seq"],
            event_type=event["type"],
            failing_since=subscription.failing_since or now,
            given_up_at=now,
            attempts=subscription.attempts + 1,
            last_error=error,
        )
    )
    return True


def dead_letters(
    conn: Connection, subscription_id: str, after: int = 0, limit: int = 100
) -> list[dict[str, Any]]:
    d = webhook_dead_letters.c
    rows = conn.execute(
        select(webhook_dead_letters)
        .where(d.subscription_id == subscription_id, d.id > after)
        .order_by(d.id)
        .limit(limit)
    )
    return [dict(row._mapping) for row in rows]


def _subscription(row: Row[Any]) -> Subscription:
    values = dict(row._mapping)
    for name in _LISTS:
        values[name] = tuple(orjson.loads(values[name]))
    values["fhir_headers"] = tuple(orjson.loads(values["fhir_headers"] or "[]"))
    return Subscription(**values)
