"""Fellegi-Sunter scoring of two Patients that share no trusted identifier.

Each field is compared to a level ("family.exact", "birth_date.swapped", ...);
a level adds log2(m/u) to the pair's score, where m is how often a true pair
compares so and u how often a random pair does (the pack's
[identity.probabilistic.weights]). An exact family or given name uses its own
frequency among the store's Patients as u: sharing a rare surname is stronger
evidence than sharing a common one. A field missing on either side adds nothing.

The score and the store's size give the pair's match probability (the prior that
two Patients of different sources are one person is 1 in N for N Patients); the
probability decides between auto-link, review and nothing, except where a field
says "another person" however high the score: given names that differ (twins),
birth dates that differ beyond a typo or a day/month swap (father and son),
genders that differ, or a missing name or birth date. Those pairs are reviewed
at most. Pure: no I/O; name frequencies come from the caller.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from jellyfish import soundex
from rapidfuzz.distance import JaroWinkler, Levenshtein

from integration.journey.matching import Outcome
from mappings.demographics import Demographics
from mappings.rulepack import IdentityRules

RULE = "probabilistic"
# Levels that mean "not the same person" whatever the rest says.
VETOES = frozenset({"given.differs", "birth_date.year", "birth_date.differs", "gender.differs"})
# field -> (store frequency of the value) or None when unknown.
Frequency = Callable[[str, str], float | None]


@dataclass(frozen=True, slots=True)
class Scored:
    outcome: Outcome | None  # None: not even worth a review
    score: float
    probability: float
    reason: str
    # field -> "level +weight"
    fields: dict[str, str]


def score_pair(
    a: Demographics,
    b: Demographics,
    rules: IdentityRules,
    frequency: Frequency,
    population: int,
) -> Scored:
    """The verdict on one pair in a store of `population` Patients."""
    levels = {
        "family": _family_level(a.family, b.family),
        "given": _given_level(a.given, b.given, rules.aliases),
        "birth_date": _birth_level(a.birth_date, b.birth_date),
        "gender": _exact_level(a.gender, b.gender, "same"),
        "location": _location_level(a, b),
        "contact": _contact_level(a, b),
    }
    fields: dict[str, str] = {}
    score = 0.0
    for name, level in levels.items():
        if level is None:
            fields[name] = "missing"
            continue
        m, u = rules.weights.get(f"{name}.{level}", (1.0, 1.0))
        if level == "exact" and name in ("family", "given"):
            u = frequency(name, getattr(a, name)) or u
        weight = math.log2(m / u)
        score += weight
        fields[name] = f"{level} {weight:+.1f}"
    vetoed = [f"{n} {lvl}" for n, lvl in levels.items() if f"{n}.{lvl}" in VETOES]
    if not a.identified or not b.identified:
        vetoed.append("a name or birth date missing")
    prior = max(population, rules.min_prior_population)
    probability = 1 / (1 + 2 ** -(score - math.log2(prior)))
    summary = f"match probability {probability:.4f}: score {score:.1f}, prior 1 in {prior:,}"
    other_person = levels["given"] == "differs" and levels["birth_date"] in ("year", "differs")
    if other_person:
        return Scored(None, score, 0.0, f"Other given name and birth date ({summary})", fields)
    if probability >= rules.auto_link_probability and not vetoed:
        return Scored(Outcome.MATCH, score, probability, f"Demographics agree ({summary})", fields)
    if probability >= rules.review_probability:
        why = f"; never automatically: {', '.join(vetoed)}" if vetoed else ""
        return Scored(
            Outcome.POSSIBLE,
            score,
            probability,
            f"Demographics partly agree ({summary}{why})",
            fields,
        )
    return Scored(None, score, probability, f"Demographics disagree ({summary})", fields)


def blocking_keys(d: Demographics) -> list[str]:
    """The keys under which a Patient's candidate pairs are looked up: a true pair
    shares at least one despite a typo in any one field, a changed surname or a move.
    Each key is narrow enough that its holders stay few however large the store
    (a common name alone would make every John Smith a candidate)."""
    keys: list[str] = []
    names = f"{soundex(d.family)}|{soundex(d.given)}" if d.family and d.given else ""
    if d.birth_date:
        keys.append(f"d|{d.birth_date}")  # a typo in a name, a new surname, a nickname
        if names:
            keys.append(f"n|{names}|{d.birth_date[:4]}")  # a day or month typo, a swap
            keys.append(f"y|{names}|{d.birth_date[5:]}")  # a year typo
    if d.phone:
        keys.append(f"p|{d.phone}")
    if d.email:
        keys.append(f"e|{d.email}")
    return keys


def _exact_level(a: str, b: str, same: str) -> str | None:
    if not a or not b:
        return None
    return same if a == b else "differs"


def _family_level(a: str, b: str) -> str | None:
    if not a or not b:
        return None
    if a == b:
        return "exact"
    similarity = JaroWinkler.similarity(a, b)
    if similarity >= 0.92:
        return "close"
    return "similar" if similarity >= 0.80 else "differs"


def _given_level(a: str, b: str, aliases: dict[str, str]) -> str | None:
    if not a or not b:
        return None
    if a == b:
        return "exact"
    if aliases.get(a, a) == aliases.get(b, b):
        return "alias"  # Bob and Robert
    if (len(a) == 1 or len(b) == 1) and a[0] == b[0]:
        return "alias"  # an initial
    return "close" if JaroWinkler.similarity(a, b) >= 0.92 else "differs"


def _birth_level(a: str, b: str) -> str | None:
    if len(a) != 10 or len(b) != 10:
        return None
    if a == b:
        return "exact"
    if a[:4] == b[:4] and a[5:7] == b[8:10] and a[8:10] == b[5:7]:
        return "swapped"
    if Levenshtein.distance(a, b) == 1:
        return "typo"
    if a[:4] == b[:4]:
        return "year"
    return "differs"


def _location_level(a: Demographics, b: Demographics) -> str | None:
    if not (a.postcode or a.city) or not (b.postcode or b.city):
        return None
    same_postcode = bool(a.postcode) and a.postcode == b.postcode
    if same_postcode and a.line and b.line and JaroWinkler.similarity(a.line, b.line) >= 0.9:
        return "address"
    if same_postcode:
        return "postcode"
    if a.city and a.city == b.city:
        return "city"
    return "differs"


def _contact_level(a: Demographics, b: Demographics) -> str | None:
    pairs = [(a.phone, b.phone), (a.email, b.email)]
    compared = [(x, y) for x, y in pairs if x and y]
    if not compared:
        return None
    return "same" if any(x == y for x, y in compared) else "differs"
