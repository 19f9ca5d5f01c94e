"""FHIR R4 topic-based Subscriptions, per the Subscriptions R5 Backport IG (STU 1.1):
the journey's one SubscriptionTopic, the R4 Subscription resources clients send and
read, and the notification Bundles (handshake, heartbeat, event-notification,
query-status, query-event) with their SubscriptionStatus Parameters.

Pure: builds and reads JSON, no I/O. What a notification points at:
- an episode event: its EpisodeOfCare (read at /fhir/EpisodeOfCare/{id}); with
  full-resource content the EpisodeOfCare itself is in the Bundle;
- a record event: the journey record, by identifier, typed with the FHIR type of the
  resource it came from;
- a person event: the unified person, by identifier.
Every notification-event also carries the feed event's id and type (an extension),
which is how a client tells record.added from episode.changed.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import orjson

from integration.errors import IntegrationError
from integration.journey.episode_of_care import BASE, episode_of_care
from integration.store.feed import EVENT_TYPES
from integration.store.webhooks import FhirChannel, Subscription, SubscriptionSpec

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"
TOPIC = f"{BASE}/SubscriptionTopic/journey-change"
FILTER_CRITERIA = f"{BACKPORT}/backport-filter-criteria"
PAYLOAD_CONTENT = f"{BACKPORT}/backport-payload-content"
HEARTBEAT_PERIOD = f"{BACKPORT}/backport-heartbeat-period"
SUBSCRIPTION_PROFILE = f"{BACKPORT}/backport-subscription"
STATUS_PROFILE = f"{BACKPORT}/backport-subscription-status-r4"
TOPIC_CANONICAL = f"{BACKPORT}/capabilitystatement-subscriptiontopic-canonical"
JOURNEY_EVENT = f"{BASE}/StructureDefinition/journey-feed-event"
RECORD_SYSTEM = f"{BASE}/journey-record"
PERSON_SYSTEM = f"{BASE}/person"
CONTENTS = ("empty", "id-only", "full-resource")
# The topic's filters (backport-filter-criteria), each to a feed filter.
FILTERS = {"type": "types", "source": "sources", "person": "people", "concern": "concerns"}
MOST_HEARTBEAT_SECONDS = 86_400


class InvalidFhirSubscription(IntegrationError):
    """A Subscription this server cannot honour; `expression` is the element at fault."""

    def __init__(self, expression: str, reason: str) -> None:
        super().__init__(f"{expression}: {reason}")
        self.expression = expression
        self.reason = reason


def _extension(element: Any, url: str) -> Any:
    if not isinstance(element, dict):
        return None
    for extension in element.get("extension") or []:
        if isinstance(extension, dict) and extension.get("url") == url:
            return extension
    return None


def _filters(resource: dict[str, Any]) -> dict[str, list[str]]:
    """The filter criteria: `key=value[,value]`, optionally after `Type?`."""
    wanted: dict[str, list[str]] = {name: [] for name in FILTERS.values()}
    criteria = resource.get("_criteria")
    extensions = criteria.get("extension", []) if isinstance(criteria, dict) else []
    for index, extension in enumerate(extensions):
        if not isinstance(extension, dict) or extension.get("url") != FILTER_CRITERIA:
            continue
        where = f"Subscription.criteria.extension[{index}]"
        text = extension.get("valueString")
        if not isinstance(text, str) or "=" not in text:
            raise InvalidFhirSubscription(where, "a filter is valueString 'key=value'")
        key, _, values = text.split("?", 1)[-1].partition("=")
        if key not in FILTERS:
            raise InvalidFhirSubscription(
                where, f"the topic filters by {', '.join(FILTERS)}, not {key!r}"
            )
        wanted[FILTERS[key]] += [v for v in values.split(",") if v]
    return wanted


def read_subscription(resource: Any) -> tuple[SubscriptionSpec, FhirChannel, str | None]:
    """What an R4 Subscription asks for: the feed filters and endpoint, the channel, and
    its reason; InvalidFhirSubscription names the element this server cannot honour."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "Subscription":
        raise InvalidFhirSubscription("resourceType", "the body must be a Subscription")
    if resource.get("criteria") != TOPIC:
        raise InvalidFhirSubscription(
            "Subscription.criteria", f"the only topic this server has is {TOPIC}"
        )
    if resource.get("status", "requested") not in ("requested", "active"):
        raise InvalidFhirSubscription("Subscription.status", "requested or active")
    channel = resource.get("channel")
    if not isinstance(channel, dict) or channel.get("type") != "rest-hook":
        raise InvalidFhirSubscription(
            "Subscription.channel.type", "rest-hook is the channel this server supports"
        )
    endpoint = channel.get("endpoint")
    if not isinstance(endpoint, str):
        raise InvalidFhirSubscription("Subscription.channel.endpoint", "required")
    if channel.get("payload", "application/fhir+json") not in (
        "application/fhir+json",
        "application/json",
    ):
        raise InvalidFhirSubscription(
            "Subscription.channel.payload", "application/fhir+json is what this server sends"
        )
    content_extension = _extension(channel.get("_payload"), PAYLOAD_CONTENT)
    content = content_extension.get("valueCode") if content_extension else "id-only"
    if content not in CONTENTS:
        raise InvalidFhirSubscription(
            "Subscription.channel.payload.extension", f"content is one of {', '.join(CONTENTS)}"
        )
    heartbeat_extension = _extension(channel, HEARTBEAT_PERIOD)
    heartbeat = heartbeat_extension.get("valueUnsignedInt") if heartbeat_extension else None
    if heartbeat is not None and (
        not isinstance(heartbeat, int) or not 1 <= heartbeat <= MOST_HEARTBEAT_SECONDS
    ):
        raise InvalidFhirSubscription(
            "Subscription.channel.extension",
            f"the heartbeat period is 1 to {MOST_HEARTBEAT_SECONDS} seconds",
        )
    headers = channel.get("header") or []
    if not isinstance(headers, list) or not all(
        isinstance(h, str) and ":" in h and "\n" not in h and "\r" not in h for h in headers
    ):
        raise InvalidFhirSubscription("Subscription.channel.header", "each is 'Name: value'")
    filters = _filters(resource)
    bad = sorted(set(filters["types"]) - set(EVENT_TYPES))
    if bad:
        raise InvalidFhirSubscription(
            "Subscription.criteria.extension", f"unknown event type {bad[0]!r}"
        )
    spec = SubscriptionSpec(
        endpoint,
        tuple(filters["types"]),
        tuple(filters["sources"]),
        tuple(filters["people"]),
        tuple(filters["concerns"]),
        "full",
        resource.get("reason") if isinstance(resource.get("reason"), str) else None,
    )
    return spec, FhirChannel(content, tuple(headers), heartbeat), spec.description


def subscription_resource(subscription: Subscription, base: str) -> dict[str, Any]:
    """The R4 Subscription as this server holds it. Channel headers are not read back:
    they usually carry the endpoint's credentials."""
    filters = [
        {"url": FILTER_CRITERIA, "valueString": f"{key}={','.join(values)}"}
        for key, name in FILTERS.items()
        if (values := getattr(subscription, name))
    ]
    channel: dict[str, Any] = {
        "type": "rest-hook",
        "endpoint": subscription.url,
        "payload": "application/fhir+json",
        "_payload": {
            "extension": [{"url": PAYLOAD_CONTENT, "valueCode": subscription.fhir_content}]
        },
    }
    if subscription.heartbeat_seconds:
        channel["extension"] = [
            {"url": HEARTBEAT_PERIOD, "valueUnsignedInt": subscription.heartbeat_seconds}
        ]
    resource: dict[str, Any] = {
        "resourceType": "Subscription",
        "id": subscription.id,
        "meta": {"profile": [SUBSCRIPTION_PROFILE]},
        "status": subscription.fhir_status,
        "reason": subscription.description or "journey changes",
        "criteria": TOPIC,
        "channel": channel,
    }
    if filters:
        resource["_criteria"] = {"extension": filters}
    if subscription.last_error and subscription.fhir_status == "error":
        resource["error"] = subscription.last_error
    return resource


def with_payload(event: dict[str, Any]) -> dict[str, Any]:
    """A stored feed event with its payload decoded (what the notifications read)."""
    text = event.get("payload")
    return {**event, "payload": orjson.loads(text) if text else None}


def _focus(event: dict[str, Any], base: str) -> dict[str, Any] | None:
    kind = str(event["type"]).split(".", 1)[0]
    if kind == "episode":
        return {"reference": f"{base}/EpisodeOfCare/{event['subject']}"}
    if kind == "record":
        payload = event.get("payload") or {}
        focus: dict[str, Any] = {"identifier": {"system": RECORD_SYSTEM, "value": event["subject"]}}
        if isinstance(payload, dict) and payload.get("resource_type"):
            focus["type"] = payload["resource_type"]
        return focus
    return {"type": "Patient", "identifier": {"system": PERSON_SYSTEM, "value": event["subject"]}}


def _notification_event(number: int, event: dict[str, Any], base: str) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [
        {"name": "event-number", "valueString": str(number)},
        {"name": "timestamp", "valueInstant": event["occurred_at"]},
    ]
    focus = _focus(event, base)
    if focus is not None:
        parts.append({"name": "focus", "valueReference": focus})
    return {
        "name": "notification-event",
        "extension": [
            {
                "url": JOURNEY_EVENT,
                "extension": [
                    {"url": "id", "valueString": f"evt_{event['seq']}"},
                    {"url": "type", "valueCode": event["type"]},
                ],
            }
        ],
        "part": parts,
    }


def status_parameters(
    subscription: Subscription,
    base: str,
    notification: str,
    events: Sequence[tuple[int, dict[str, Any]]] = (),
    since_start: int | None = None,
) -> dict[str, Any]:
    """The SubscriptionStatus of a notification or a $status answer, as R4 Parameters."""
    numbered = subscription.events_numbered if since_start is None else since_start
    parameters: list[dict[str, Any]] = [
        {
            "name": "subscription",
            "valueReference": {"reference": f"{base}/Subscription/{subscription.id}"},
        },
        {"name": "topic", "valueCanonical": TOPIC},
        {"name": "status", "valueCode": subscription.fhir_status or "active"},
        {"name": "type", "valueCode": notification},
        {"name": "events-since-subscription-start", "valueString": str(numbered)},
    ]
    if subscription.fhir_status == "error" and subscription.last_error:
        parameters.append(
            {"name": "error", "valueCodeableConcept": {"text": subscription.last_error}}
        )
    if subscription.fhir_content != "empty":
        parameters += [_notification_event(number, event, base) for number, event in events]
    return {
        "resourceType": "Parameters",
        "id": str(uuid.uuid4()),
        "meta": {"profile": [STATUS_PROFILE]},
        "parameter": parameters,
    }


def notification_bundle(
    subscription: Subscription,
    base: str,
    notification: str,
    events: Sequence[tuple[int, dict[str, Any]]] = (),
    timestamp: str | None = None,
    since_start: int | None = None,
) -> dict[str, Any]:
    """A history Bundle: the status first, then (id-only and full-resource) an entry for
    each EpisodeOfCare an event points at, with the resource itself for full-resource."""
    status = status_parameters(subscription, base, notification, events, since_start)
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": f"urn:uuid:{status['id']}",
            "resource": status,
            "request": {"method": "GET", "url": f"{base}/Subscription/{subscription.id}/$status"},
            "response": {"status": "200"},
        }
    ]
    if subscription.fhir_content != "empty":
        for _number, event in events:
            if not str(event["type"]).startswith("episode."):
                continue
            url = f"{base}/EpisodeOfCare/{event['subject']}"
            removed = event["type"] == "episode.removed"
            entry: dict[str, Any] = {
                "fullUrl": url,
                "request": {
                    "method": "DELETE" if removed else "PUT",
                    "url": f"EpisodeOfCare/{event['subject']}",
                },
                "response": {"status": "204" if removed else "200"},
            }
            payload = event.get("payload")
            if subscription.fhir_content == "full-resource" and isinstance(payload, dict):
                entry["resource"] = episode_of_care(str(event["person_id"]), payload)
            entries.append(entry)
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "history",
        "entry": entries,
    }
    if timestamp is not None:
        bundle["timestamp"] = timestamp
    return bundle


def topic_resource() -> dict[str, Any]:
    """The journey's SubscriptionTopic, as an R4B SubscriptionTopic (R4 has no such
    resource: the CapabilityStatement names its canonical)."""
    return {
        "resourceType": "SubscriptionTopic",
        "id": "journey-change",
        "url": TOPIC,
        "title": "Journey change",
        "status": "active",
        "description": "A change to the unified patient journey: a person created, changed, "
        "merged or unmerged; a journey record added, changed or removed; an episode added, "
        "changed or removed. Each is an event of the journey feed (GET /feed).",
        "resourceTrigger": [
            {
                "description": "An episode of care of the unified journey changes",
                "resource": "EpisodeOfCare",
                "supportedInteraction": ["create", "update", "delete"],
            }
        ],
        "canFilterBy": [
            {
                "description": "Feed event types (" + ", ".join(EVENT_TYPES) + ")",
                "filterParameter": "type",
            },
            {"description": "Events concerning this source", "filterParameter": "source"},
            {
                "description": "Events of this unified person (an id from /people)",
                "filterParameter": "person",
            },
            {
                "description": "Episode events of this concern (e.g. depression, icd10cm:I10)",
                "filterParameter": "concern",
            },
        ],
        "notificationShape": [{"resource": "EpisodeOfCare"}],
    }
