"""The encounter rules as a decision table keyed by code tuples.

Placing a record depends only on its evidence as (element, system, code, known)
tuples and its care setting. The table answers that question once per distinct
evidence tuple and per distinct code: the first encounter with a given mix of codes
pays for the index lookups and the priority comparison, every later one is a single
dict lookup. Real populations repeat a few hundred such mixes thousands of times.

The memo is bounded: when it holds `limit` entries it is emptied and refilled, so a
stream of unseen mixes costs what the uncached rules cost, never unbounded memory.
Pure: no I/O, safe to share between threads (a race computes an entry twice).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, TypeVar

from mappings.fhir_values import Code
from mappings.model import Flag, Job

if TYPE_CHECKING:
    from mappings.rulepack import CodeIndex, CodeSet, EncounterRule

# (element, system, code, known): one piece of coded evidence as the rules read it.
EvidenceKey = tuple[str, str, str, bool | None]
MEMO_LIMIT = 1 << 16
_K = TypeVar("_K")
_V = TypeVar("_V")


@dataclass(frozen=True, slots=True)
class Decision:
    """The rule an evidence tuple selects, or None; which positions of the tuple it
    matched (in order, no repeats), the other rules it outranked, and the grouped
    codes looked at (for the reason of an unmatched record)."""

    rule: EncounterRule | None
    used: tuple[int, ...]
    outranked: tuple[str, ...]
    looked_at: str


# Found, OwnCodes, Placed and EncounterPlacement are named tuples, not frozen dataclasses:
# mapping an Encounter makes several, and a frozen dataclass sets each field through
# object.__setattr__, several times the cost of building a tuple.


class Found(NamedTuple):
    """One code of the evidence, where it came from, and whether its concern was known
    before the visit (None: nothing says)."""

    element: str
    code: Code
    source: str | None  # the resource it came from ("Procedure/p1"), None if the Encounter
    known: bool | None = None
    since: str | None = None


class OwnCodes(NamedTuple):
    """What an Encounter's own elements say: its care setting, title and usable codes
    (class, type, serviceType, reasonCode; a reason's `known` not yet read)."""

    setting: str | None
    title: str
    found: tuple[Found, ...]
    # Whether `found` holds a reasonCode (one the patient's history may show was known),
    # read once with the codes rather than for every Encounter placed.
    has_reason: bool = False


class Placed(NamedTuple):
    """What the rules say about a record's evidence: its job, rule and reason."""

    job: Job
    rule_id: str
    reason: str
    matched_codes: tuple[str, ...]


class EncounterPlacement(NamedTuple):
    """All of an Encounter's record that its coded elements and status decide: what is
    left is its times, subject and date warnings."""

    placed: Placed
    title: str
    setting: str | None
    concern_codes: tuple[str, ...]
    flags: tuple[Flag, ...]
    excluded: bool


class EncounterDecisions:
    """Memoised decisions over a pack's compiled code indexes."""

    def __init__(
        self, index: Mapping[str, CodeIndex], ignored: CodeSet, limit: int = MEMO_LIMIT
    ) -> None:
        self._index = index
        self._ignored = ignored
        self._limit = limit
        self._usable: dict[tuple[str, str], bool] = {}
        self._rules: dict[tuple[str, str, str], tuple[EncounterRule, ...]] = {}
        self._decisions: dict[tuple[str | None, tuple[EvidenceKey, ...]], Decision] = {}
        # The serialised coded elements of an Encounter with no linked evidence -> its
        # placement: the whole decision in one lookup.
        self.placements: dict[bytes, EncounterPlacement] = {}
        # The same key -> the Encounter's own codes, for one read with linked evidence.
        self.own_codes: dict[bytes, OwnCodes] = {}
        # The same key and the evidence read for an Encounter -> its placement.
        self.placements_with_evidence: dict[
            tuple[bytes, tuple[Found, ...]], EncounterPlacement
        ] = {}

    def usable(self, system: str | None, code: str | None) -> bool:
        """Coded, and not a code the pack ignores (social findings, vital signs)."""
        if not system or not code:
            return False
        key = (system, code)
        found = self._usable.get(key)
        if found is None:
            found = key not in self._ignored
            remember(self._usable, key, found, self._limit)
        return found

    def decide(self, setting: str | None, evidence: tuple[EvidenceKey, ...]) -> Decision:
        key = (setting, evidence)
        decision = self._decisions.get(key)
        if decision is None:
            decision = self._compute(setting, evidence)
            remember(self._decisions, key, decision, self._limit)
        return decision

    def _rules_for(self, element: str, system: str, code: str) -> tuple[EncounterRule, ...]:
        key = (element, system, code)
        rules = self._rules.get(key)
        if rules is None:
            rules = tuple(self._index[element].lookup(system, code))
            remember(self._rules, key, rules, self._limit)
        return rules

    def _compute(self, setting: str | None, evidence: tuple[EvidenceKey, ...]) -> Decision:
        matches = [
            (rule, position)
            for position, (element, system, code, known) in enumerate(evidence)
            for rule in self._rules_for(element, system, code)
            if rule.applies(setting, known)
        ]
        if not matches:
            grouped: dict[str, list[str]] = {}
            for element, system, code, _ in evidence:
                tokens = grouped.setdefault(element, [])
                if f"{system}|{code}" not in tokens:
                    tokens.append(f"{system}|{code}")
            looked_at = "; ".join(f"{e} {', '.join(t)}" for e, t in grouped.items())
            return Decision(None, (), (), looked_at)
        best = min((rule for rule, _ in matches), key=lambda r: (-r.priority, r.order))
        used = tuple(dict.fromkeys(position for rule, position in matches if rule is best))
        outranked = tuple(dict.fromkeys(rule.id for rule, _ in matches if rule.id != best.id))
        return Decision(best, used, outranked, "")


def remember(memo: dict[_K, _V], key: _K, value: _V, limit: int = MEMO_LIMIT) -> None:
    """Store in a bounded memo: a full memo is emptied first."""
    if len(memo) >= limit:
        memo.clear()
    memo[key] = value
