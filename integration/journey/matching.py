"""Is this pair of Patients one person? The verdict on one candidate pair.

Pure: Patients in, a verdict out, no I/O. A pair becomes a candidate when both
carry the same value of a trusted identifier system (the pack's [identity]
section decides which systems, from which sources). An identifier alone never
merges two people: it links automatically only when the demographics agree, and
anything less goes to review:

- both Patients have a birth date and a name (family or given), else review:
  nothing confirms the identifier;
- the birth dates are the same, else review (a typo, or another person's number);
- the family names or the given names agree (Jaro-Winkler at least the pack's
  `name_similarity`, after case and accent folding): a surname changed at marriage
  still agrees by given name; both differing is review;
- no conflicting administrative gender (both present and different: review).

Each verdict names its rule and the per-field comparisons, for the link's reason
and the review queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from rapidfuzz.distance import JaroWinkler

from mappings.demographics import Demographics
from mappings.rulepack import IdentityRules


class Outcome(StrEnum):
    MATCH = "match"  # one person: linked
    POSSIBLE = "possible"  # perhaps one person: queued for review, not linked
    NO_MATCH = "no_match"  # two people (a reviewer's decision)


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    rule: str
    reason: str
    # Field -> how the two compared ("same", "differs", "0.93", "missing").
    fields: dict[str, str]


def judge_identifier_match(
    a: Demographics, b: Demographics, shared: str, rules: IdentityRules
) -> Verdict:
    """The verdict on two Patients sharing a trusted identifier (`shared` names it,
    by system only: never the value)."""
    fields = {
        "birth_date": _compare_exact(a.birth_date, b.birth_date),
        "family": _compare_name(a.family, b.family),
        "given": _compare_name(a.given, b.given),
        "gender": _compare_exact(a.gender, b.gender),
    }
    rule = f"identifier {shared}"

    def review(why: str) -> Verdict:
        return Verdict(Outcome.POSSIBLE, rule, f"Same {shared}, but {why}: to review", fields)

    if not a.birth_date or not b.birth_date:
        return review("a birth date is missing")
    if not (a.family or a.given) or not (b.family or b.given):
        return review("a name is missing")
    if a.birth_date != b.birth_date:
        return review("the birth dates differ")
    threshold = rules.name_similarity
    if not (_agrees(fields["family"], threshold) or _agrees(fields["given"], threshold)):
        return review("neither family nor given names agree")
    if fields["gender"] == "differs":
        return review("the genders differ")
    return Verdict(
        Outcome.MATCH,
        rule,
        f"Same {shared}, same birth date and a matching name",
        fields,
    )


def _compare_exact(a: str, b: str) -> str:
    if not a or not b:
        return "missing"
    return "same" if a == b else "differs"


def _compare_name(a: str, b: str) -> str:
    if not a or not b:
        return "missing"
    if a == b:
        return "same"
    return f"{JaroWinkler.similarity(a, b):.2f}"


def _agrees(comparison: str, threshold: float) -> bool:
    if comparison == "same":
        return True
    if comparison in ("missing", "differs"):
        return False
    return float(comparison) >= threshold
