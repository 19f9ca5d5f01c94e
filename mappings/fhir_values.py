"""Small readers for FHIR datatypes as parsed JSON: Coding, CodeableConcept, Reference.

Tolerant by design: a malformed element yields nothing rather than raising,
because validation has already run and mapping must never crash on data.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any, NamedTuple

# Statuses that say what was recorded never happened or was wrong (Encounter,
# QuestionnaireResponse, Observation, Claim): such a resource leaves the journey.
WITHDRAWN_STATUSES = frozenset({"cancelled", "entered-in-error"})

_UUID_URN = re.compile(r"^urn:uuid:([0-9A-Za-z.\-]{1,64})$")
_TYPED = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")


class Code(NamedTuple):
    """One Coding. A named tuple, not a frozen dataclass: one is made for every coding
    read, and it is hashed as part of decision keys (a tuple's hash is C-level)."""

    system: str | None
    code: str | None
    display: str | None

    @property
    def token(self) -> str:
        return f"{self.system or ''}|{self.code or ''}"


def coding(value: Any) -> Code | None:
    if not isinstance(value, dict):
        return None
    system, code, display = value.get("system"), value.get("code"), value.get("display")
    return Code(
        system if isinstance(system, str) else None,
        code if isinstance(code, str) else None,
        display if isinstance(display, str) else None,
    )


def concept_codes(concept: Any) -> Iterator[Code]:
    """The codings of one CodeableConcept."""
    if not isinstance(concept, dict):
        return
    codings = concept.get("coding")
    if isinstance(codings, list):
        for item in codings:
            code = coding(item)
            if code is not None:
                yield code


def concepts_codes(concepts: Any) -> Iterator[Code]:
    """The codings of a list of CodeableConcepts."""
    if isinstance(concepts, list):
        for concept in concepts:
            yield from concept_codes(concept)


def concept_label(concept: Any) -> str | None:
    """What a person would read for a CodeableConcept: its text, else a display."""
    if not isinstance(concept, dict):
        return None
    text = concept.get("text")
    if isinstance(text, str) and text:
        return text
    for code in concept_codes(concept):
        if code.display:
            return code.display
    return None


def reference_id(reference: Any, resource_type: str) -> str | None:
    """The logical id a Reference points to, if it points to `resource_type`.

    Reads relative ("Patient/1"), absolute (".../Patient/1", "/_history/2"
    stripped) and Bundle-internal ("urn:uuid:...") references; a conditional
    reference ("Patient?identifier=...") is not resolved here.
    """
    if not isinstance(reference, dict):
        return None
    value = reference.get("reference")
    if not isinstance(value, str):
        return None
    match = _UUID_URN.match(value) if value.startswith("urn:") else None
    if match:
        declared = reference.get("type")
        return match.group(1) if declared in (None, resource_type) else None
    return _typed_id(value, resource_type)


@lru_cache(maxsize=1 << 16)
def _typed_id(value: str, resource_type: str) -> str | None:
    # Cached: one patient's reference repeats on every resource about them.
    match = _TYPED.search(value)
    if match and match.group(1) == resource_type:
        return match.group(2)
    return None


def element_at(resource: Any, *path: str) -> Any:
    """The value at a path of plain keys ("period", "start"), or None where it stops."""
    value: Any = resource
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value
