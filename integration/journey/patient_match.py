"""Patient/$match: which stored Patients may be the person a given Patient describes.

The same rules as linking (`integration.journey.identity`), read-only: candidates
from the trusted identifiers it carries and from its blocking keys, each judged by
the identifier rule or scored probabilistically, graded as FHIR's match-grade
extension grades them:

- certain: would be linked automatically (a confirmed trusted identifier, or a
  match probability at the auto-link bar with nothing against it);
- probable: would wait for review;
- possible: shares a blocking key, with a lower probability (at least 0.1).

Nothing is stored: asking is not linking.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from integration.journey.identity import identifiers_of, name_frequency, trusted_holders
from integration.journey.matching import Outcome, judge_identifier_match
from integration.journey.probabilistic import blocking_keys, score_pair
from integration.store import demographics as demographics_store
from integration.store import people as people_store
from integration.store.derivation import current_contents
from integration.store.matches import PatientKey
from integration.store.populations import Condition
from mappings.demographics import Demographics
from mappings.rulepack import IdentityRules

POSSIBLE_FLOOR = 0.1
_GRADE_ORDER = {"certain": 0, "probable": 1, "possible": 2}


@dataclass(frozen=True, slots=True)
class Candidate:
    key: PatientKey
    grade: str  # certain, probable, possible
    score: float  # match probability, 0-1
    resource: dict[str, Any]


def match_patient(
    conn: Connection,
    patient: dict[str, Any],
    rules: IdentityRules,
    sources: Sequence[str] | None = None,
    readable: Sequence[Condition] | None = None,
) -> list[Candidate]:
    """Stored Patients (of `sources` only, when given; of people passing `readable`,
    conditions on `person_links.person_id`, when given) that may be this Patient,
    best first."""
    wanted = Demographics.of(patient)
    pairs = [p for p in identifiers_of(patient) if rules.names_a_person(*p)]
    by_identifier: dict[PatientKey, str] = {}
    for (system, _), holders in trusted_holders(conn, pairs, rules).items():
        for key in holders:
            by_identifier.setdefault(key, system)
    holding = demographics_store.holders_of_keys(
        conn, blocking_keys(wanted), rules.max_block, same_cost=readable is not None
    )
    candidates = set(by_identifier) | {k for keys in holding.values() for k in keys}
    if sources is not None:
        candidates = {k for k in candidates if k[0] in sources}
    if readable is not None:
        # Before any demographics are read: nobody outside the client's reach is scored.
        candidates = set(people_store.links_of(conn, sorted(candidates), readable))
    stored = demographics_store.demographics_of(conn, sorted(candidates))
    frequency, population = name_frequency(conn, [wanted, *stored.values()])
    graded: dict[PatientKey, tuple[str, float]] = {}
    for key, theirs in stored.items():
        shared = by_identifier.get(key)
        if shared is not None:
            verdict = judge_identifier_match(wanted, theirs, shared, rules)
            if verdict.outcome == Outcome.MATCH:
                graded[key] = ("certain", 1.0)
                continue
        scored = score_pair(wanted, theirs, rules, frequency, population)
        grade = {Outcome.MATCH: "certain", Outcome.POSSIBLE: "probable"}.get(
            scored.outcome or Outcome.NO_MATCH, "possible"
        )
        if grade == "possible" and scored.probability < POSSIBLE_FLOOR:
            continue
        graded[key] = (grade, scored.probability)
    found: list[Candidate] = []
    by_source: dict[str, set[str]] = {}
    for source, patient_id in graded:
        by_source.setdefault(source, set()).add(patient_id)
    for source, ids in by_source.items():
        for patient_id, content in current_contents(conn, source, "Patient", ids).items():
            grade, score = graded[(source, patient_id)]
            found.append(Candidate((source, patient_id), grade, score, content))
    found.sort(key=lambda c: (_GRADE_ORDER[c.grade], -c.score, c.key))
    return found
