"""Who a Patient says it is, folded for comparison: the demographics identity
matching reads (`integration.journey.matching`, `integration.journey.probabilistic`).

Pure: a parsed Patient in, plain strings out. Case, accents and punctuation are
folded away; the official name is preferred; the home address (not an old one);
phone numbers by their last 10 digits.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

from mypy_extensions import mypyc_attr


@mypyc_attr(native_class=False)
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
            family=fold(family),
            given=fold(given.split()[0] if given.split() else ""),
            birth_date=birth[:10] if isinstance(birth, str) and len(birth) >= 10 else "",
            gender=gender if isinstance(gender, str) and gender != "unknown" else "",
            line=fold(line),
            postcode=fold(str(address.get("postalCode") or ""))[:5],
            city=fold(str(address.get("city") or "")),
            phone=_telecom(patient, "phone"),
            email=_telecom(patient, "email"),
        )

    @property
    def identified(self) -> bool:
        """Enough to link automatically: a birth date and a name."""
        return bool(self.birth_date and (self.family or self.given))


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


def fold(text: str) -> str:
    """Case, accents and punctuation folded away: "O'Brien-Núñez" -> "obriennunez"
    (a name search folds its words alike: `integration.store.people_search`)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if ch.isalnum())
