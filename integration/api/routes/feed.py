"""The journey feed: every change to people, records and episodes, in order, from any
point a consumer has reached (an opaque cursor stable across restarts)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Header, Query, Request
from sqlalchemy import Engine
from sse_starlette import EventSourceResponse, ServerSentEvent

from integration.access.principal import Principal
from integration.access.visibility import readable
from integration.api.cursors import decode_cursor, encode_cursor
from integration.api.deps import WITHOUT_NUL, ReadFeed, ReadStoreDep, SettingsDep
from integration.api.models import FeedPage
from integration.api.openapi import problem
from integration.api.problems import ApiProblem
from integration.api.responses import OrjsonResponse
from integration.store import feed as feed_store

router = APIRouter(tags=["feed"])
Types = Annotated[
    list[str] | None, Query(description="Only these event types (repeatable or comma-separated)")
]
Person = Annotated[str | None, Query(pattern=WITHOUT_NUL, description="Only this person's events")]
Source = Annotated[
    str | None,
    Query(
        pattern=WITHOUT_NUL,
        description="Only events concerning this source (its records, people with a Patient "
        "from it, episodes with data from it)",
    ),
]
Concern = Annotated[
    str | None,
    Query(pattern=WITHOUT_NUL, description="Only episode events of this concern (e.g. depression)"),
]


def _selecting(
    types: list[str], person: str | None, source: str | None, concern: str | None
) -> feed_store.EventFilter:
    def one(value: str | None) -> list[str]:
        return [value] if value else []

    return feed_store.EventFilter(types, one(person), one(source), one(concern))


Payload = Annotated[
    Literal["thin", "full"], Query(description="thin (default) or full: each thing's new form")
]


def feed_position(cursor: str | None, bounds: tuple[int, int]) -> int:
    """The sequence a cursor stands for: 400 if this store never issued it, 410 if the
    events after it are past retention."""
    if cursor is None:
        return max(bounds[0] - 1, 0)
    [text] = decode_cursor(cursor, 1)
    return _checked_position(text, bounds, "cursor is not one this API issued")


def _checked_position(text: str, bounds: tuple[int, int], never_issued: str) -> int:
    """A sequence number this store issued whose following events it still holds: 400
    (`never_issued`) if it never issued it, 410 if they are past retention."""
    low, high = bounds
    if not text.isdigit() or int(text) > high:
        raise ApiProblem(400, "Bad Request", never_issued)
    if int(text) < low - 1:
        raise ApiProblem(
            410,
            "Gone",
            "the events after this cursor are past the feed's retention: read the "
            "journeys again, then follow the feed from a fresh cursor",
        )
    return int(text)


def parse_types(types: list[str] | None) -> list[str]:
    wanted = [t for value in types or () for t in value.split(",") if t]
    unknown = sorted(set(wanted) - set(feed_store.EVENT_TYPES))
    if unknown:
        raise ApiProblem(
            400,
            "Bad Request",
            f"types: unknown event type {unknown[0]!r}",
            invalid_params=[
                {
                    "in": "query",
                    "name": "types",
                    "reason": "one of " + ", ".join(feed_store.EVENT_TYPES),
                }
            ],
        )
    return wanted


@router.get(
    "/feed",
    response_model=FeedPage,
    responses={
        **problem(400, "A cursor this API never issued, or an unknown event type"),
        **problem(410, "The events after the cursor are past retention"),
    },
)
def read_feed(
    engine: ReadStoreDep,
    settings: SettingsDep,
    caller: ReadFeed,
    after: Annotated[
        str | None,
        Query(pattern=WITHOUT_NUL, description="next_cursor of the previous page; none: the start"),
    ] = None,
    types: Types = None,
    person: Person = None,
    source: Source = None,
    concern: Concern = None,
    limit: Annotated[int | None, Query(ge=1, le=1000, description="Page size")] = None,
    payload: Payload = "thin",
) -> OrjsonResponse:
    """Changes in the order they were committed (so in order per person), at least once:
    keep `next_cursor` and drop events whose `id` you have seen. Always answers a
    `next_cursor`, also when there is nothing new, to poll with."""
    wanted = parse_types(types)
    with engine.connect() as conn:
        position = feed_position(after, feed_store.bounds(conn))
        selected = readable(conn, caller).selecting(_selecting(wanted, person, source, concern))
        rows = feed_store.read(
            conn, position, limit or settings.page_size, selected, payload == "full"
        )
    last = rows[-1]["seq"] if rows else position
    return OrjsonResponse(
        {
            "items": [feed_store.event_json(row, payload == "full") for row in rows],
            "next_cursor": encode_cursor([str(last)]),
        }
    )


STREAM_POLL_SECONDS = 0.25
HEARTBEAT_SECONDS = 15


def _stream_start(last_event_id: str | None, after: str | None, bounds: tuple[int, int]) -> int:
    """Where a stream starts: after the Last-Event-ID a reconnecting client sends, else
    after the cursor, else at the start."""
    if last_event_id is not None:
        return _checked_position(
            last_event_id.removeprefix("evt_"),
            bounds,
            "Last-Event-ID is not an event id of this feed",
        )
    return feed_position(after, bounds)


@router.get(
    "/feed/stream",
    responses={
        200: {
            "content": {
                "text/event-stream": {
                    "schema": {
                        "type": "string",
                        "description": "Server-Sent Events: each event's `id` is the feed "
                        "event id, `event` its type, `data` the event as JSON (as in GET "
                        "/feed); a comment line every 15 s keeps the connection alive",
                    }
                }
            }
        },
        **problem(400, "A cursor or Last-Event-ID this API never issued, or an unknown type"),
        **problem(410, "The events after the cursor are past retention"),
    },
)
async def stream_feed(
    request: Request,
    engine: ReadStoreDep,
    caller: ReadFeed,
    after: Annotated[
        str | None, Query(pattern=WITHOUT_NUL, description="A next_cursor from GET /feed")
    ] = None,
    types: Types = None,
    person: Person = None,
    source: Source = None,
    concern: Concern = None,
    payload: Payload = "thin",
    last_event_id: Annotated[
        str | None,
        Header(pattern=WITHOUT_NUL, description="Sent by a reconnecting client: resume after it"),
    ] = None,
) -> EventSourceResponse:
    """The feed as Server-Sent Events, live: what GET /feed answers, then each change as
    it is committed. A client that reconnects with Last-Event-ID misses nothing."""
    wanted = parse_types(types)

    def bounds() -> tuple[int, int]:
        with engine.connect() as conn:
            return feed_store.bounds(conn)

    position = _stream_start(last_event_id, after, await asyncio.to_thread(bounds))
    return EventSourceResponse(
        _events(
            request,
            engine,
            caller,
            position,
            _selecting(wanted, person, source, concern),
            payload == "full",
        ),
        ping=HEARTBEAT_SECONDS,
    )


async def _events(
    request: Request,
    engine: Engine,
    caller: Principal,
    position: int,
    wanted: feed_store.EventFilter,
    full: bool,
) -> AsyncIterator[ServerSentEvent]:
    def page(after: int) -> list[dict[str, Any]]:
        with engine.connect() as conn:
            # Read again for each page: a Consent counts from the next page on.
            selected = readable(conn, caller).selecting(wanted)
            return feed_store.read(conn, after, 500, selected, full)

    while not await request.is_disconnected():
        rows = await asyncio.to_thread(page, position)
        for row in rows:
            event = feed_store.event_json(row, full)
            yield ServerSentEvent(
                data=orjson.dumps(event).decode(), id=event["id"], event=event["type"]
            )
            position = row["seq"]
        if not rows:
            await asyncio.sleep(STREAM_POLL_SECONDS)
