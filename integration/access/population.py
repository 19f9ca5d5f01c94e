"""Populations: the people a client may see at all, before scopes and Consents.

A client limited to a population sees a person when any of that person's source
Patients comes from one of its `sources` (a provider's patients) or is on the member
roster of one of its `rosters` (a payer's member group: the roster a source's
`[sources.members]` names, as its last sync read it). Everyone else is, to that
client, nobody. Pure: the store turns a population into a query condition
(`integration.store.populations`).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from integration.access.scopes import Permission

# What a client limited to a population may hold: every other permission (status,
# sources, quarantine, syncs, linking, the audit trail) spans the whole store.
WITHIN_A_POPULATION = frozenset(
    {Permission.READ_PEOPLE, Permission.READ_FEED, Permission.MANAGE_SUBSCRIPTIONS}
)


@dataclass(frozen=True, slots=True)
class Population:
    sources: tuple[str, ...] = ()
    rosters: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.sources and not self.rosters:
            raise ValueError("a population names at least one source or roster")

    def describe(self) -> str:
        parts = []
        if self.sources:
            parts.append("sources " + ", ".join(self.sources))
        if self.rosters:
            parts.append("the rosters of " + ", ".join(self.rosters))
        return " or ".join(parts)


def population_of(sources: list[str] | None, rosters: list[str] | None) -> Population | None:
    """None (everyone) when neither is given."""
    if not sources and not rosters:
        return None
    return Population(tuple(sorted(set(sources or ()))), tuple(sorted(set(rosters or ()))))


def population_json(population: Population | None) -> str | None:
    """As kept in the store (None: everyone)."""
    if population is None:
        return None
    return orjson.dumps({"sources": population.sources, "rosters": population.rosters}).decode()


def population_from_json(text: str | None) -> Population | None:
    if text is None:
        return None
    data = orjson.loads(text)
    return Population(tuple(data["sources"]), tuple(data["rosters"]))
