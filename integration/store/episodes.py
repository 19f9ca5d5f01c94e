"""The episodes zone: a person's shown records read as episodes read them, the episodes
kept for the cohort measures, and which people's episodes are out of date."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Connection, delete, func, select

from integration.store import feed
from integration.store.feed import FeedEventType as Event
from integration.store.job_records import of_people
from integration.store.schema import episodes, episodes_stale, job_records
from integration.store.upsert import insert_ignore
from mappings.episodes import ShownRecord
from mappings.model import Flag, Job, ScaleScore
from mappings.outcomes import cohort_facts

# Keep an IN list well under SQLite's bound-parameter limit.
_CHUNK = 500


def mark_stale(conn: Connection, person_ids: Iterable[str]) -> None:
    """These people's records or Patients changed: their episodes are to be recomputed."""
    rows = [{"person_id": p} for p in sorted(set(person_ids))]
    for at in range(0, len(rows), _CHUNK):
        insert_ignore(conn, episodes_stale, rows[at : at + _CHUNK], ["person_id"])


def stale_people(conn: Connection, limit: int) -> list[str]:
    query = select(episodes_stale.c.person_id).order_by(episodes_stale.c.person_id).limit(limit)
    return list(conn.execute(query).scalars())


def stale_count(
    conn: Connection, readable: Callable[[Any], Sequence[ColumnElement[bool]]] | None = None
) -> int:
    """People whose episodes wait to be built (with `readable`, of those a client may
    read: how many outsiders have news is not its to know)."""
    query = select(func.count()).select_from(episodes_stale)
    if readable is not None:
        query = query.where(*readable(episodes_stale.c.person_id))
    return int(conn.execute(query).scalar_one())


def journey_items(conn: Connection, person_ids: Sequence[str]) -> dict[str, list[ShownRecord]]:
    """Each person's shown records (in the journey, restating no other source's), by
    person id. A person with none (merged, or no records yet) is absent."""
    c = job_records.c
    found: dict[str, list[ShownRecord]] = {}
    for at in range(0, len(person_ids), _CHUNK):
        chunk = person_ids[at : at + _CHUNK]
        query = of_people(
            select(
                c.id,
                c.job,
                c.occurred_start,
                c.source,
                c.resource_type,
                c.setting,
                c.concern_codes,
                c.matched_codes,
                c.instrument,
                c.scores,
                c.fulfilment_score,
                c.flags,
                c.joined,
            ),
            chunk,
        )
        rows = conn.execute(query.where(c.excluded.is_(False), c.event_of.is_(None)))
        for row in rows:
            found.setdefault(row.person_id, []).append(_item(row._mapping))
    return found


def _item(row: Any) -> ShownRecord:
    return ShownRecord(
        id=row["id"],
        job=Job(row["job"]),
        start=row["occurred_start"] or None,
        source=row["source"],
        resource_type=row["resource_type"],
        setting=row["setting"],
        concern_codes=tuple(orjson.loads(row["concern_codes"])),
        matched_codes=tuple(orjson.loads(row["matched_codes"])),
        instrument=row["instrument"],
        scores=tuple(
            ScaleScore(s["scale"], s["value"], s["band"]) for s in orjson.loads(row["scores"])
        ),
        fulfilment_score=row["fulfilment_score"],
        flags=tuple(Flag(f) for f in orjson.loads(row["flags"])),
        also_sources=tuple(j["source"] for j in orjson.loads(row["joined"])),
    )


def replace_episodes(
    conn: Connection,
    by_person: Mapping[str, Sequence[dict[str, Any]]],
    pack_version: str,
    now: str,
) -> None:
    """Store these people's episodes in place of what was kept, mark them current, and
    report each episode added, changed or removed to the feed (a status that only
    time moved is no change: the status is told as of the moment it is read)."""
    people = sorted(by_person)
    kept: dict[str, tuple[str, Any]] = {}
    for at in range(0, len(people), _CHUNK):
        chunk = people[at : at + _CHUNK]
        for row in conn.execute(
            select(episodes.c.id, episodes.c.person_id, episodes.c.body).where(
                episodes.c.person_id.in_(chunk)
            )
        ):
            kept[row.id] = (row.person_id, _timeless(orjson.loads(row.body)))
        conn.execute(delete(episodes).where(episodes.c.person_id.in_(chunk)))
        conn.execute(delete(episodes_stale).where(episodes_stale.c.person_id.in_(chunk)))
    changes: list[feed.Change] = []
    for person in people:
        for episode in by_person[person]:
            was = kept.pop(episode["id"], None)
            if was is None or was[1] != _timeless(episode):
                kind = Event.EPISODE_ADDED if was is None else Event.EPISODE_CHANGED
                changes.append(
                    feed.Change(
                        kind,
                        episode["id"],
                        person,
                        None,
                        episode,
                        episode["sources"],
                        episode["concern"]["id"],
                    )
                )
    changes += [
        feed.Change(
            Event.EPISODE_REMOVED,
            episode_id,
            person,
            None,
            sources=body["sources"],
            concern=body["concern"]["id"],
        )
        for episode_id, (person, body) in sorted(kept.items())
    ]
    feed.append(conn, changes, now)
    rows = [
        {
            "id": episode["id"],
            "person_id": person,
            "concern": episode["concern"]["id"],
            "start": episode["start"] or "",
            "pack_version": pack_version,
            "body": orjson.dumps(episode).decode(),
            "facts": orjson.dumps(cohort_facts(episode)).decode(),
            "computed_at": now,
        }
        for person in people
        for episode in by_person[person]
    ]
    if rows:
        conn.execute(episodes.insert(), rows)


def _timeless(episode: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in episode.items() if k not in ("status", "end")}


def stored_episodes(
    conn: Connection,
    concern: str | None = None,
    start_from: str | None = None,
    start_to: str | None = None,
    readable: Callable[[Any], Sequence[ColumnElement[bool]]] | None = None,
    page_size: int = 2000,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(person id, episode facts) for the kept episodes (`cohort_facts`), narrowed in
    the query by concern and start where given, read in keyset pages (a server-side
    cursor needs a transaction, which an autocommit read connection does not hold)."""
    query = select(episodes.c.id, episodes.c.person_id, episodes.c.facts)
    if readable is not None:  # conditions on the person, for a client's reach
        query = query.where(*readable(episodes.c.person_id))
    if concern is not None:
        query = query.where(episodes.c.concern == concern)
    if start_from is not None:
        query = query.where(episodes.c.start >= start_from)
    if start_to is not None:
        query = query.where(episodes.c.start < start_to)
    after = ""
    while True:
        page = conn.execute(
            query.where(episodes.c.id > after).order_by(episodes.c.id).limit(page_size)
        ).all()
        for row in page:
            yield row.person_id, orjson.loads(row.facts)
        if len(page) < page_size:
            return
        after = page[-1].id
