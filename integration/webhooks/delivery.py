"""Delivering the feed to webhook subscriptions: one queue per endpoint.

A `WebhookDeliverer` (run by `journey worker`) leases the subscriptions nobody
holds and runs one asyncio task for each: it reads the events after the
subscription's position that its filters select, POSTs them one at a time, in
order, signed (Standard Webhooks), and moves the position past each one the
endpoint answered with a 2xx. A failing or slow endpoint only ever holds up its
own task; the others go on.

A delivery that fails (an error status, a timeout, no connection) is tried again
after an exponential backoff with jitter. Once the endpoint has been failing for
`webhook_give_up_hours`, the head event goes to the dead letters (visible,
replayable) and the next is tried. Delivery is at least once: a process killed
between the endpoint's answer and the position's write delivers that event again,
with the same webhook-id, which receivers use to drop repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from integration.access.audit import audit_row
from integration.access.clients import ClientDirectory
from integration.access.visibility import readable_by
from integration.clock import sleep_or_stop, utc_now
from integration.config import Settings
from integration.store import audit as audit_store
from integration.store import feed as feed_store
from integration.store import webhooks as store
from integration.store.errors import describe_store_error
from integration.store.leases import later
from integration.webhooks import fhir_subscriptions as fhir
from integration.webhooks.signing import signed_headers
from mappings.dates import ISO_FORMAT

log = logging.getLogger(__name__)
READ_AHEAD = 100
# The position is written after this many deliveries or seconds, whichever comes first:
# one write per event halved the delivery rate. A process killed in between delivers
# those events again (at least once), with the same ids.
SAVE_EVERY = 50
SAVE_SECONDS = 0.25
CLAIM_EVERY_SECONDS = 2.0
MOST_PER_PROCESS = 500


@dataclass(slots=True)
class DeliveryStats:
    delivered: int = 0
    failed: int = 0
    dead_lettered: int = 0
    store_errors: int = 0


def retry_delay(attempts: int, first: float, most: float) -> float:
    """Seconds before the next attempt after `attempts` failures in a row: doubling from
    `first`, at most `most`, then jittered to half to all of it (so endpoints that
    failed together are not retried together)."""
    # The exponent is capped: an endpoint failing for days counts thousands of attempts,
    # and 2.0 ** 1024 overflows (the wait has long reached `most` by then anyway).
    doublings = min(max(attempts - 1, 0), 64)
    return min(first * 2.0**doublings, most) * random.uniform(0.5, 1.0)


def message_body(row: dict[str, Any], full: bool) -> str:
    """A delivery's body, shaped as the Standard Webhooks specification suggests: the
    event type, its time, and the event as GET /feed answers it."""
    event = feed_store.event_json(row, full)
    return orjson.dumps({"type": event["type"], "timestamp": event["time"], "data": event}).decode()


class WebhookDeliverer:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        owner: str,
        on_note: Callable[[str], None] | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.owner = owner
        self.lease_seconds = float(settings.worker_lease_seconds)
        self.on_note = on_note or (lambda _m: None)
        self.fhir_base = settings.fhir_base_url
        self.stats = DeliveryStats()
        # Subscriptions a client created deliver within that client's population.
        self.populations = ClientDirectory(settings.clients, settings.config_file)
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def run(self, stop: asyncio.Event) -> DeliveryStats:
        """Hold and serve subscriptions until `stop` is set; then give them back."""
        while not stop.is_set():
            self._tasks = {k: t for k, t in self._tasks.items() if not t.done()}
            try:
                claimed = await asyncio.to_thread(self._claim)
            except DBAPIError as exc:
                self.stats.store_errors += 1
                self.on_note(
                    f"webhooks: store unavailable, trying again: {describe_store_error(exc)}"
                )
                claimed = []
            for subscription_id in claimed:
                self._tasks[subscription_id] = asyncio.create_task(
                    self._serve(subscription_id, stop), name=f"webhook {subscription_id}"
                )
            await sleep_or_stop(stop, CLAIM_EVERY_SECONDS)
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        with contextlib.suppress(DBAPIError):
            await asyncio.to_thread(self._release)
        return self.stats

    def _claim(self) -> list[str]:
        room = MOST_PER_PROCESS - len(self._tasks)
        if room <= 0:
            return []
        now = utc_now()
        with self.engine.begin() as conn:
            return store.claim(conn, self.owner, now, later(now, self.lease_seconds), room)

    def _release(self) -> None:
        with self.engine.begin() as conn:
            store.release(conn, self.owner)

    async def _serve(self, subscription_id: str, stop: asyncio.Event) -> None:
        """One endpoint's queue, until `stop`, the subscription's removal or the lease's loss."""
        timeout = self.settings.webhook_timeout_seconds
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            endpoint = _Endpoint(self, client, subscription_id)
            while not stop.is_set():
                try:
                    keep_going = await endpoint.step()
                except DBAPIError as exc:
                    self.stats.store_errors += 1
                    self.on_note(
                        f"webhooks: {subscription_id}: store error, trying again: "
                        f"{describe_store_error(exc)}"
                    )
                    keep_going = True
                    await sleep_or_stop(stop, self.settings.worker_poll_seconds)
                except Exception:
                    # Never the subscription's whole loop for one surprise: logged by
                    # type, tried again.
                    log.exception("webhooks: %s: delivery step failed", subscription_id)
                    keep_going = True
                    await sleep_or_stop(stop, self.settings.worker_poll_seconds)
                if not keep_going:
                    return
                if endpoint.wait:
                    await sleep_or_stop(stop, endpoint.wait)


class _Endpoint:
    """The state of one subscription's delivery between steps."""

    def __init__(
        self, deliverer: WebhookDeliverer, client: httpx.AsyncClient, subscription_id: str
    ) -> None:
        self.d = deliverer
        self.client = client
        self.id = subscription_id
        self.wait = 0.0
        self.renewed = time.monotonic()

    async def step(self) -> bool:
        """Deliver what is due; False when this process no longer serves the endpoint.
        Sets `wait`: how long to sleep before the next step."""
        settings = self.d.settings
        subscription = await asyncio.to_thread(self._load)
        if subscription is None or subscription.lease_owner != self.d.owner:
            return False
        if not await self._renew_if_due():
            return False
        due_in = _seconds_until(subscription.next_attempt_at)
        if due_in > 0:
            self.wait = min(due_in, self.d.lease_seconds / 3)
            return True
        if subscription.is_fhir and subscription.last_sent_at is None:
            # A new FHIR subscription's endpoint is asked first, with a handshake.
            await self._contact(subscription, "handshake")
            return True
        rows, high = await asyncio.to_thread(self._pending, subscription)
        if not rows:
            if high > subscription.position:
                await asyncio.to_thread(self._write, store.passed, subscription, high)
            if _heartbeat_due(subscription):
                await self._contact(subscription, "heartbeat")
            self.wait = settings.webhook_poll_seconds
            return True
        self.wait = 0.0
        taken: list[dict[str, Any]] = []  # delivered, the position not yet written
        saved_at = time.monotonic()
        for row in rows:
            number = subscription.events_numbered + len(taken) + 1
            error = await self._post(subscription, *self._message(subscription, row, number))
            if error is None:
                taken.append(row)
                if len(taken) < SAVE_EVERY and time.monotonic() - saved_at < SAVE_SECONDS:
                    continue
            subscription, kept = await self._save(subscription, taken)
            taken, saved_at = [], time.monotonic()
            if not kept:
                return True  # replayed or taken over meanwhile: read it again
            if error is not None:
                await asyncio.to_thread(self._failure, subscription, row, error)
                return True
            if not await self._renew_if_due():
                return False
        await self._save(subscription, taken)
        return True

    async def _save(
        self, subscription: store.Subscription, taken: list[dict[str, Any]]
    ) -> tuple[store.Subscription, bool]:
        """Write the position past the events delivered; False if the subscription was
        replayed or taken over since it was read."""
        if not taken:
            return subscription, True
        if not await asyncio.to_thread(self._delivered, subscription, taken):
            return subscription, False
        self.d.stats.delivered += len(taken)
        moved = replace(
            subscription,
            position=taken[-1]["seq"],
            attempts=0,
            failing_since=None,
            next_attempt_at=None,
            events_numbered=subscription.events_numbered + len(taken) * subscription.is_fhir,
        )
        return moved, True

    async def _renew_if_due(self) -> bool:
        if time.monotonic() - self.renewed < self.d.lease_seconds / 3:
            return True
        self.renewed = time.monotonic()
        return await asyncio.to_thread(self._renew)

    def _message(
        self, subscription: store.Subscription, row: dict[str, Any], number: int
    ) -> tuple[str, dict[str, str]]:
        """A delivery's body and headers: a signed Standard Webhooks message, or for a
        FHIR subscription an event-notification Bundle with the channel's headers."""
        now = datetime.now(UTC)
        stamp = now.strftime(ISO_FORMAT)
        if subscription.is_fhir:
            bundle = fhir.notification_bundle(
                subscription,
                self.d.fhir_base,
                "event-notification",
                [(number, fhir.with_payload(row))],
                stamp,
                since_start=number,
            )
            return orjson.dumps(bundle).decode(), _fhir_headers(subscription)
        body = message_body(row, subscription.payload == "full")
        return body, signed_headers(f"evt_{row['seq']}", body, subscription.secrets(stamp), now)

    async def _contact(self, subscription: store.Subscription, notification: str) -> None:
        """A FHIR handshake or heartbeat; a failure is retried with backoff."""
        bundle = fhir.notification_bundle(
            subscription, self.d.fhir_base, notification, timestamp=utc_now()
        )
        error = await self._post(
            subscription, orjson.dumps(bundle).decode(), _fhir_headers(subscription)
        )
        if error is None:
            await asyncio.to_thread(self._write, store.contacted, subscription, utc_now())
        else:
            await asyncio.to_thread(self._retry_later, subscription, f"{notification}: {error}")

    async def _post(
        self, subscription: store.Subscription, body: str, headers: dict[str, str]
    ) -> str | None:
        """None when the endpoint took the message, else what went wrong (no values)."""
        try:
            response = await self.client.post(subscription.url, content=body, headers=headers)
        except httpx.TimeoutException:
            return f"no answer within {self.d.settings.webhook_timeout_seconds:g} s"
        except httpx.HTTPError as exc:
            return f"could not deliver: {type(exc).__name__}"
        if 200 <= response.status_code < 300:
            return None
        return f"answered HTTP {response.status_code}"

    # The store's side, each in a short transaction of its own (run in a thread).

    def _load(self) -> store.Subscription | None:
        with self.d.engine.connect() as conn:
            return store.load(conn, self.id)

    def _renew(self) -> bool:
        now = utc_now()
        with self.d.engine.begin() as conn:
            return store.renew(conn, self.id, self.d.owner, later(now, self.d.lease_seconds))

    def _pending(self, subscription: store.Subscription) -> tuple[list[dict[str, Any]], int]:
        """The next selected events, and the feed's newest sequence read before them (so
        that, when none is selected, the position may move up to it)."""
        with self.d.engine.connect() as conn:
            high = feed_store.bounds(conn)[1]
            if high <= subscription.position:
                return [], high  # nothing new: an idle endpoint's poll is this one read
            # Privacy Consents withholding from every client, or naming this endpoint or
            # the client that created it; and that client's population.
            recipients = [f"subscription:{subscription.id}"]
            population = None
            nobody = False
            creator = subscription.client_id
            if creator is not None:
                recipients.append(creator)
                if self.d.populations.listed(creator):
                    population = self.d.populations.of(creator)
                else:
                    # A limited client removed from the config is sent no one (never
                    # everyone); one that saw everyone (a JOURNEY_API_KEYS key, an
                    # OAuth client not listed) still does.
                    nobody = subscription.client_population is not None
            shown = readable_by(conn, recipients, population, nobody)
            rows = feed_store.read(
                conn,
                subscription.position,
                READ_AHEAD,
                shown.selecting(subscription.selects),
                payloads=subscription.payload == "full",
                upto=high,
            )
        return rows, high

    def _write(
        self, write: Callable[..., bool], subscription: store.Subscription, *args: Any
    ) -> bool:
        with self.d.engine.begin() as conn:
            return write(conn, subscription, self.d.owner, *args)

    def _delivered(self, subscription: store.Subscription, rows: list[dict[str, Any]]) -> bool:
        """The position past `rows`, and in the same transaction the audit trail's
        record of whose data went to the endpoint (one row per person)."""
        now = utc_now()
        with self.d.engine.begin() as conn:
            seqs = [row["seq"] for row in rows]
            if not store.delivered(conn, subscription, self.d.owner, seqs, now):
                return False
            if self.d.settings.audit:
                audit_store.append(conn, _transmitted(subscription, rows, now))
            return True

    def _failure(self, subscription: store.Subscription, row: dict[str, Any], error: str) -> None:
        settings = self.d.settings
        self.d.stats.failed += 1
        now = datetime.now(UTC)
        failing_since = subscription.failing_since or now.strftime(ISO_FORMAT)
        give_up_at = datetime.fromisoformat(failing_since) + timedelta(
            hours=settings.webhook_give_up_hours
        )
        stamp = now.strftime(ISO_FORMAT)
        if now >= give_up_at:
            if self._write(store.dead_letter, subscription, row, error, stamp):
                self.d.stats.dead_lettered += 1
                log.warning(
                    "webhooks: %s: gave up on evt_%s after failing since %s: %s",
                    self.id,
                    row["seq"],
                    failing_since,
                    error,
                )
            return
        self._retry_later(subscription, error)

    def _retry_later(self, subscription: store.Subscription, error: str) -> None:
        settings = self.d.settings
        now = datetime.now(UTC)
        delay = retry_delay(
            subscription.attempts + 1,
            settings.webhook_first_retry_seconds,
            settings.webhook_max_retry_seconds,
        )
        retry_at = (now + timedelta(seconds=delay)).strftime(ISO_FORMAT)
        self._write(store.failed, subscription, error, now.strftime(ISO_FORMAT), retry_at)


def _transmitted(
    subscription: store.Subscription, rows: list[dict[str, Any]], now: str
) -> list[dict[str, Any]]:
    people = sorted({row["person_id"] for row in rows if row["person_id"]})
    return [
        audit_row(
            recorded=now,
            action="E",
            subtype="transmit",
            outcome="0",
            client=f"subscription:{subscription.id}",
            person_id=person,
            method="POST",
            path=subscription.url.split("?", 1)[0],
            query=f"events={len(rows)}",
            status=200,
        )
        for person in people or [None]
    ]


def _fhir_headers(subscription: store.Subscription) -> dict[str, str]:
    headers = {"content-type": "application/fhir+json"}
    for header in subscription.fhir_headers:
        name, _, value = header.partition(":")
        headers[name.strip()] = value.strip()
    return headers


def _heartbeat_due(subscription: store.Subscription) -> bool:
    every = subscription.heartbeat_seconds
    if not (subscription.is_fhir and every and subscription.last_sent_at):
        return False
    return -_seconds_until(subscription.last_sent_at) >= every


def _seconds_until(moment: str | None) -> float:
    if moment is None:
        return 0.0
    return (datetime.fromisoformat(moment) - datetime.now(UTC)).total_seconds()
