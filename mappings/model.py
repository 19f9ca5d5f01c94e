"""The values mapping produces: jobs and job records."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from mypy_extensions import mypyc_attr

# Classes whose objects leave the package are plain Python classes even when compiled
# (`native_class=False`, see mappings/native.py): orjson reads a dataclass's fields from
# its slots, and a native class keeps float, int and bool fields unboxed there.


class Job(StrEnum):
    """The job a patient hired care for; `unclassified` when no rule could tell."""

    DIAGNOSE = "diagnose"
    TREAT = "treat"
    KEEP_WELL = "keep_well"
    UNCLASSIFIED = "unclassified"


class Flag(StrEnum):
    """What a reader must notice about a record, whatever its job."""

    # A safety item (PHQ-9 item 9, thoughts of self-harm) was answered above "not at all".
    SELF_HARM_RISK = "self_harm_risk"
    # Not a whole measure: in progress, stopped, or items missing; it carries no score.
    INCOMPLETE = "incomplete"
    # A later, amended version stands in its place.
    SUPERSEDED = "superseded"
    # Planned or in the future: not care that has happened.
    UPCOMING = "upcoming"


@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class ScaleScore:
    """One score an instrument reports (PHQ-9 has one; PROMIS-10 a physical and a mental)."""

    scale: str
    value: float
    band: str | None = None


@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class SourceRef:
    """Which stored resource version a record was derived from."""

    source: str
    resource_type: str
    resource_id: str
    version: str


# Not frozen: a frozen dataclass sets each of its 21 fields through object.__setattr__,
# about as dear as the rest of mapping an Encounter. A record is made once, by mapping,
# and never changed after: a changed record is a new one (`dataclasses.replace`).
# Mapping's hot paths (an Encounter, a response) make it positionally, each argument
# commented with its field: a class called with 20 keywords packs them into a dict for
# __init__ to unpack, about 1 us of a record's 2.
@mypyc_attr(native_class=False)
@dataclass(slots=True)
class JobRecord:
    """One piece of a patient's journey, always with the reason it was placed so.

    Times are ISO 8601 UTC strings; `occurred_end` is exclusive and, for a
    partial date such as "2025-01", closes the interval the date stands for.
    `concern_codes` and `matched_codes` are "system|code" strings.
    An `excluded` record stays in the store but leaves the journey (entered in
    error, cancelled, superseded): shown only when asked for, its reason says why.
    `score` and `band` are the instrument's first scale; `scores` holds every scale.
    """

    job: Job
    source_ref: SourceRef
    subject_id: str | None
    occurred_start: str | None
    occurred_end: str | None
    title: str
    setting: str | None
    concern_codes: tuple[str, ...]
    rule_id: str
    pack_version: str
    reason: str
    matched_codes: tuple[str, ...] = ()
    instrument: str | None = None
    score: int | None = None
    fulfilment_score: int | None = None
    warnings: tuple[str, ...] = field(default=())
    flags: tuple[Flag, ...] = ()
    excluded: bool = False
    band: str | None = None
    instrument_version: str | None = None
    scores: tuple[ScaleScore, ...] = ()
