"""One real-world event seen by several sources: which job records restate another.

A provider records a visit as an Encounter; the payer pays for it and sends a
claim (or an Encounter made from one). Both become job records of the same person.
Two records are the same event when they come from different sources, happened on
the same day (an inpatient stay: the stays overlap), in compatible settings (the
same, or one unknown), and their codes are related through the rule pack: both
placed by the same rule (whose value set spans the vocabularies: CPT on the claim,
SNOMED CT on the Encounter), or sharing a concern or matched code. Withdrawn and
unclassified records join nothing; a source's own two records of one day are two
events by its own account, never one.

The record with the richest evidence (most matched and concern codes) is shown and
names the others with why; the others restate it. Pure: records in, links out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mypy_extensions import mypyc_attr

EVENT_TYPES = frozenset({"Encounter", "ExplanationOfBenefit", "Claim"})
STAY_SETTINGS = frozenset({"inpatient"})


@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class EventRecord:
    """What deciding "same event" reads of a job record."""

    id: str
    source: str
    resource_type: str
    resource_id: str
    start: str
    end: str | None
    setting: str | None
    rule_id: str
    codes: frozenset[str]  # matched and concern codes
    excluded: bool

    @property
    def richness(self) -> int:
        return len(self.codes)


@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class Joined:
    """A record restating the shown one, and why they are one event."""

    record: EventRecord
    why: str


def same_events(records: Sequence[EventRecord]) -> dict[str, list[Joined]]:
    """Shown record id -> the records (of other sources) that restate it."""
    usable = sorted(
        (r for r in records if _joinable(r)),
        key=lambda r: (r.start, -r.richness, r.source, r.id),
    )
    groups: list[list[EventRecord]] = []
    for record in usable:
        for group in groups:
            if any(member.source == record.source for member in group):
                continue
            if all(_why(member, record) for member in group):
                group.append(record)
                break
        else:
            groups.append([record])
    found: dict[str, list[Joined]] = {}
    for group in groups:
        if len(group) < 2:
            continue
        shown = min(
            group, key=lambda r: (-r.richness, r.resource_type != "Encounter", r.source, r.id)
        )
        found[shown.id] = [
            Joined(member, _why(shown, member) or "") for member in group if member is not shown
        ]
    return found


def _joinable(record: EventRecord) -> bool:
    return (
        record.resource_type in EVENT_TYPES
        and not record.excluded
        and bool(record.start)
        and record.rule_id != "unclassified"
    )


def _why(a: EventRecord, b: EventRecord) -> str | None:
    """Why two records of different sources are one event, or None."""
    if a.source == b.source:
        return None
    if a.setting and b.setting and a.setting != b.setting:
        return None
    if a.setting in STAY_SETTINGS or b.setting in STAY_SETTINGS:
        if not _overlap(a, b):
            return None
        when = "overlapping stays"
    elif a.start[:10] != b.start[:10]:
        return None
    else:
        when = "the same day"
    if a.rule_id == b.rule_id:
        related = f"both placed by rule {a.rule_id}"
    elif shared := sorted(a.codes & b.codes):
        related = f"both coded {shared[0]}"
    else:
        return None
    return f"{when}, {a.setting or b.setting or 'setting unknown'}, {related}"


def _overlap(a: EventRecord, b: EventRecord) -> bool:
    a_end = a.end or a.start
    b_end = b.end or b.start
    return a.start[:10] <= b_end[:10] and b.start[:10] <= a_end[:10]
