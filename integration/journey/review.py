"""A reviewer's decisions on who is one person: link two Patients, keep them apart,
merge two people, split a Patient off its person.

Each decision is a verdict on a pair of source Patients made by a named user: it
outranks the automatic one, survives re-matching (a Patient arriving again is
judged against everyone but the pairs a reviewer decided), goes to the pair's
history, and the people around it are recomputed at once, so the journeys read
through them follow. Run under the derive lock, like derivation itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

from integration.clock import utc_now
from integration.errors import IntegrationError
from integration.journey.identity import regroup
from integration.journey.matching import Outcome
from integration.journey.rule_packs import store_pack
from integration.store import matches as matches_store
from integration.store import people as people_store
from integration.store.locks import DERIVE, hold
from integration.store.matches import PairVerdict, PatientKey
from integration.store.queries import resolve_person
from mappings.rulepack import IdentityRules

REVIEWER_RULE = "reviewer"


class UnknownPatient(IntegrationError, LookupError):
    """No source Patient with that (source, id) is linked to anyone."""


class UnknownPerson(IntegrationError, LookupError):
    """No person with that id."""


class PersonMerged(IntegrationError):
    """A decision named a person that has since been merged into another."""

    def __init__(self, person_id: str, into: str) -> None:
        super().__init__(f"person {person_id} was merged into {into}: decide on {into} instead")
        self.person_id = person_id
        self.into = into


_T = TypeVar("_T")


def under_derive_lock(engine: Engine, decide: Callable[[Connection, IdentityRules], _T]) -> _T:
    """Run a reviewer's decision in one transaction holding the derive lock (derivation
    links people too), with the store's identity rules."""
    rules = store_pack(engine).identity
    with engine.begin() as conn:
        hold(conn, DERIVE, utc_now())
        return decide(conn, rules)


def history_of_person(conn: Connection, person_id: str) -> tuple[str, list[dict[str, Any]]]:
    """The surviving id of a person and every decision on a pair with one of its
    Patients, oldest first."""
    resolved = resolve_person(conn, person_id)
    if resolved is None:
        raise UnknownPerson(f"no person with id {person_id}")
    members = people_store.members_of(conn, [resolved]).get(resolved, [])
    return resolved, matches_store.history_of(conn, members)


def decide_pair(
    conn: Connection,
    a: PatientKey,
    b: PatientKey,
    outcome: Outcome,
    reason: str,
    user: str,
    now: str,
    rules: IdentityRules,
) -> dict[PatientKey, str]:
    """Two source Patients are one person (`match`) or two (`no_match`), as `user`
    decided; returns the person of each after the decision."""
    if a == b:
        raise ValueError("a Patient is always one person with itself")
    _require_patients(conn, [a, b])
    first, second = matches_store.ordered(a, b)
    verdict = PairVerdict(first, second, outcome, REVIEWER_RULE, reason, {}, f"user:{user}", now)
    matches_store.write_verdicts(conn, [verdict])
    matches_store.record_history(conn, [verdict])
    return regroup(conn, [a, b], now, rules)


def merge_people(
    conn: Connection,
    person_id: str,
    into: str,
    reason: str,
    user: str,
    now: str,
    rules: IdentityRules,
) -> str:
    """Two people are one: a reviewer's link between a Patient of each. Returns the
    surviving person's id."""
    members = {p: _members_of_live_person(conn, p) for p in (person_id, into)}
    if person_id == into:
        return into
    linked = decide_pair(
        conn, members[person_id][0], members[into][0], Outcome.MATCH, reason, user, now, rules
    )
    return linked[members[into][0]]


def split_patient(
    conn: Connection,
    patient: PatientKey,
    reason: str,
    user: str,
    now: str,
    rules: IdentityRules,
) -> str:
    """Take one source Patient out of its person: a reviewer's `no_match` with each of
    the person's other Patients. Returns the Patient's person afterwards."""
    person = people_store.links_of(conn, [patient]).get(patient)
    if person is None:
        raise UnknownPatient(f"no linked Patient {patient[1]} in source {patient[0]}")
    others = [m for m in people_store.members_of(conn, [person]).get(person, []) if m != patient]
    verdicts = [
        PairVerdict(
            *matches_store.ordered(patient, other),
            Outcome.NO_MATCH,
            REVIEWER_RULE,
            reason,
            {},
            f"user:{user}",
            now,
        )
        for other in others
    ]
    matches_store.write_verdicts(conn, verdicts)
    matches_store.record_history(conn, verdicts)
    return regroup(conn, [patient, *others], now, rules)[patient]


def _require_patients(conn: Connection, keys: list[PatientKey]) -> None:
    linked = people_store.links_of(conn, keys)
    for key in keys:
        if key not in linked:
            raise UnknownPatient(f"no linked Patient {key[1]} in source {key[0]}")


def _members_of_live_person(conn: Connection, person_id: str) -> list[PatientKey]:
    state = people_store.person_state(conn, person_id)
    if state is None:
        raise UnknownPerson(f"no person with id {person_id}")
    if state.merged_into is not None:
        raise PersonMerged(person_id, state.merged_into)
    members = sorted(people_store.members_of(conn, [person_id]).get(person_id, []))
    if not members:
        raise UnknownPerson(f"person {person_id} has no Patients")
    return members
