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

import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from rapidfuzz.distance import JaroWinkler

from mappings.rulepack import IdentityRules


class Outcome(StrEnum):
    MATCH = "match"  # one person: linked
    POSSIBLE = "possible"  # perhaps one person: queued for review, not linked
    NO_MATCH = "no_match"  # two people (a reviewer's decision)


@dataclass(frozen=True, slots=True)
class Demographics:
    """What a Patient says about who it is, normalised for comparison."""

    family: str
    given: str  # the first given name
    birth_date: str
    gender: str
    line: str = ""
    postcode: str = ""
    city: str = ""
    phone: str = ""  # the last 10 digits
    email: str = ""

    @classmethod
    def of(cls, patient: dict[str, Any]) -> Demographics:
        family, given = _official_name(patient)
        birth = patient.get("birthDate")
        gender = patient.get("gender")
        address = _home_address(patient)
        line = " ".join(x for x in address.get("line") or () if isinstance(x, str))
        return cls(
            family=_fold(family),
            given=_fold(given.split()[0] if given.split() else ""),
            birth_date=birth[:10] if isinstance(birth, str) and len(birth) >= 10 else "",
            gender=gender if isinstance(gender, str) and gender != "unknown" else "",
            line=_fold(line),
            postcode=_fold(str(address.get("postalCode") or ""))[:5],
            city=_fold(str(address.get("city") or "")),
            phone=_telecom(patient, "phone"),
            email=_telecom(patient, "email"),
        )

    @property
    def identified(self) -> bool:
        """Enough to link automatically: a birth date and a name."""
        return bool(self.birth_date and (self.family or self.given))


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


def _home_address(patient: dict[str, Any]) -> dict[str, Any]:
    addresses = [a for a in patient.get("address") or () if isinstance(a, dict)]
    current = [a for a in addresses if a.get("use") != "old"]
    chosen = next((a for a in current if a.get("use") == "home"), None)
    return chosen or (current[0] if current else {})


def _telecom(patient: dict[str, Any], system: str) -> str:
    for point in patient.get("telecom") or ():
        if isinstance(point, dict) and point.get("system") == system:
            value = point.get("value")
            if isinstance(value, str):
                if system == "phone":
                    digits = "".join(ch for ch in value if ch.isdigit())
                    return digits[-10:] if len(digits) >= 7 else ""
                return value.strip().casefold()
    return ""


def _official_name(patient: dict[str, Any]) -> tuple[str, str]:
    """(family, given) of the Patient's official name, else its first name."""
    names = [n for n in patient.get("name") or () if isinstance(n, dict)]
    if not names:
        return "", ""
    name = next((n for n in names if n.get("use") == "official"), names[0])
    family = name.get("family") if isinstance(name.get("family"), str) else ""
    given = " ".join(g for g in name.get("given") or () if isinstance(g, str))
    if not family and not given and isinstance(name.get("text"), str):
        *first, last = name["text"].split() or [""]
        return last, " ".join(first)
    return family or "", given


def _fold(text: str) -> str:
    """Case, accents and punctuation folded away: "O'Brien-Núñez" -> "obriennunez"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if ch.isalnum())
