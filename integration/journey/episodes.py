"""Episodes for the journey API and the cohort measures.

A person's own views (`/people/{id}/episodes`, the journey's `episodes=true`,
`journey show`, `/fhir/EpisodeOfCare`) compute the episodes on read from the
person's records: always current, and cheap for one person. The cohort measures
read the episodes kept in the store, which `refresh_episodes` brings up to date
for the people whose records or Patients changed (marked as the journey is
derived): `journey serve`'s upkeep does it in the background, `journey outcomes`
before it reports.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine

from integration.clock import utc_now
from integration.store import episodes as episodes_store
from integration.store.locks import DERIVE, hold
from mappings.episodes import build_episodes, episode_json
from mappings.rulepack import RulePack

log = logging.getLogger(__name__)


def episodes_of_person(
    conn: Connection, person_id: str, pack: RulePack, as_of: str
) -> list[dict[str, Any]]:
    """A person's episodes as of `as_of`, from their shown records."""
    items = episodes_store.journey_items(conn, [person_id]).get(person_id, [])
    return [episode_json(episode, as_of) for episode in build_episodes(person_id, items, pack)]


def refresh_episodes(
    engine: Engine,
    pack: RulePack,
    batch_size: int = 200,
    on_progress: Callable[[int], None] | None = None,
    pace: Callable[[float], bool] | None = None,
) -> int:
    """Recompute the kept episodes of every person marked stale; returns how many
    people. Each batch commits on its own under the derive lock, so no derivation can
    change a person's records between reading them and clearing their mark. A person
    whose episodes cannot be built is isolated: logged by id, their kept episodes
    dropped (the measures leave them out rather than show stale ones), the others go on.

    `pace`, if given, is called after each batch with the seconds its work took (from
    holding the lock to committing), outside the transaction; it may wait, and its
    False stops the pass (the rest stay marked)."""
    done = 0
    while True:
        with engine.begin() as conn:
            now = utc_now()
            hold(conn, DERIVE, now)
            # The batch's own work, not the wait for the lock: `pace` rests in proportion.
            began = time.perf_counter()
            people = episodes_store.stale_people(conn, batch_size)
            if not people:
                return done
            items = episodes_store.journey_items(conn, people)
            built: dict[str, list[dict[str, Any]]] = {}
            for person in people:
                try:
                    built[person] = [
                        episode_json(e, now)
                        for e in build_episodes(person, items.get(person, []), pack)
                    ]
                except Exception as exc:  # one person never stops the rest
                    log.warning(
                        "episodes of person %s could not be built (%s): left out of the "
                        "outcome measures until their records change",
                        person,
                        type(exc).__name__,
                    )
                    built[person] = []
            episodes_store.replace_episodes(conn, built, pack.label, now)
        done += len(people)
        if on_progress is not None:
            on_progress(len(people))
        if pace is not None and not pace(time.perf_counter() - began):
            return done
