"""Encounter -> one job record, placed by the evidence about it.

Evidence is read from the Encounter itself (class, type, serviceType, reasonCode),
from the Conditions it names, and from the resources that name it (Conditions,
Procedures, DiagnosticReports, Observations, medications, immunizations), with the
patient's earlier Conditions to tell a known concern from a new one. Every code is
looked up in the pack's compiled indexes; of the rules that match, the highest
priority wins (ties: the one listed first in the pack), so specific coded evidence
(treatment given, prevention, a known concern) outranks generic class and type. The
record names the codes and resources it matched and the rules it outranked.
Nothing matched -> an `unclassified` record that lists what was looked at.

A planned encounter is flagged upcoming; a cancelled or entered-in-error one leaves
the journey (kept, with the reason).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType
from typing import Any, NamedTuple

import orjson

from mappings.dates import period_interval
from mappings.decisions import EncounterPlacement, Found, OwnCodes, Placed, remember
from mappings.evidence import Evidence
from mappings.fhir_values import (
    WITHDRAWN_STATUSES,
    Code,
    coding,
    concept_codes,
    concept_label,
    concepts_codes,
    reference_id,
)
from mappings.model import Flag, Job, JobRecord, SourceRef
from mappings.rulepack import ACTCODE, RulePack, normalise_code

UPCOMING_STATUSES = frozenset({"planned"})
# Elements whose codes are concerns (known before the visit, or new at it).
CONCERN_ELEMENTS = frozenset({"reasonCode", "condition"})


class EncounterContext(NamedTuple):
    """What mapping an Encounter needs from outside it: the Conditions its `diagnosis`
    and `reasonReference` name (by id), the resources that name it (`linked`), and
    the patient's Conditions (`history`), all read by the caller, set-based. A named
    tuple: one is made per Encounter mapped."""

    conditions: Mapping[str, Evidence] = MappingProxyType({})
    linked: Sequence[Evidence] = ()
    history: Sequence[Evidence] = ()


def referenced_condition_ids(encounter: Mapping[str, Any]) -> list[str]:
    """Ids of the Conditions an Encounter names as diagnosis or reason, in order."""
    ids: list[str] = []
    diagnoses = encounter.get("diagnosis")
    if isinstance(diagnoses, list):
        for diagnosis in diagnoses:
            if isinstance(diagnosis, dict):
                found = reference_id(diagnosis.get("condition"), "Condition")
                if found and found not in ids:
                    ids.append(found)
    reasons = encounter.get("reasonReference")
    if isinstance(reasons, list):
        for reason in reasons:
            found = reference_id(reason, "Condition")
            if found and found not in ids:
                ids.append(found)
    return ids


def map_encounter(
    encounter: Mapping[str, Any],
    ref: SourceRef,
    pack: RulePack,
    context: EncounterContext | None = None,
) -> JobRecord:
    period = encounter.get("period")
    start, end, warnings = period_interval(
        period.get("start") if isinstance(period, dict) else None,
        period.get("end") if isinstance(period, dict) else None,
        "Encounter.period",
    )
    if start is None:
        warnings.append("Encounter.period.start: missing; the record has no time")
    placement = _placement(encounter, ref.resource_id, start, context or _NO_CONTEXT, pack)
    placed = placement.placed
    # Positional, in JobRecord's field order (see there why): one per Encounter.
    return JobRecord(
        placed.job,  # job
        ref,  # source_ref
        reference_id(encounter.get("subject"), "Patient"),  # subject_id
        start,  # occurred_start
        end,  # occurred_end
        placement.title,  # title
        placement.setting,  # setting
        placement.concern_codes,  # concern_codes
        placed.rule_id,  # rule_id
        pack.label,  # pack_version
        placed.reason,  # reason
        placed.matched_codes,  # matched_codes
        None,  # instrument
        None,  # score
        None,  # fulfilment_score
        tuple(warnings),  # warnings
        placement.flags,  # flags
        placement.excluded,  # excluded
    )


def _coded_key(encounter: Mapping[str, Any]) -> bytes | None:
    """The Encounter's coded elements and status, serialised: the key of the pack's
    decision tables (None if they cannot be serialised)."""
    try:
        return orjson.dumps(
            [
                encounter.get("status"),
                encounter.get("class"),
                encounter.get("type"),
                encounter.get("serviceType"),
                encounter.get("reasonCode"),
            ]
        )
    except orjson.JSONEncodeError:
        return None


def _placement(
    encounter: Mapping[str, Any],
    encounter_id: str,
    start: str | None,
    context: EncounterContext,
    pack: RulePack,
) -> EncounterPlacement:
    """The Encounter's placement: from the pack's decision table, keyed by its coded
    elements and status, when nothing outside it can change the answer (no evidence
    names it or is named by it, and no reason of it can be a concern known before);
    read from its evidence otherwise."""
    key = _coded_key(encounter)
    own = _own_codes(encounter, pack, key)
    outside = _outside_evidence(encounter, context)
    if key is not None and not outside and not (context.history and own.has_reason):
        table = pack.encounter_decisions.placements
        placement = table.get(key)
        if placement is None:
            # Without evidence from outside, nothing else (not its id, times or
            # subject) can change the answer.
            placement = encounter_placement(encounter, encounter_id, None, _NO_CONTEXT, pack, own)
            remember(table, key, placement)
        return placement
    found = gather_evidence(encounter, encounter_id, own.found, start, context, pack, outside)
    if key is None:
        return _placement_of(encounter, own, found, pack)
    # The same coded Encounter with the same evidence (a follow-up visit naming the
    # same known Condition) is placed the same way: decided once.
    table_of_found = pack.encounter_decisions.placements_with_evidence
    memo_key = (key, tuple(found))
    placement = table_of_found.get(memo_key)
    if placement is None:
        placement = _placement_of(encounter, own, found, pack)
        remember(table_of_found, memo_key, placement)
    return placement


def encounter_placement(
    encounter: Mapping[str, Any],
    encounter_id: str,
    start: str | None,
    context: EncounterContext,
    pack: RulePack,
    own: OwnCodes | None = None,
    outside: Sequence[Evidence] | None = None,
) -> EncounterPlacement:
    """What the rules say about an Encounter: job, rule, reason, title, setting, concern,
    flags, from its own codes, its status and the evidence in `context` (`own` and
    `outside`: its codes and the evidence about it, when already read)."""
    if own is None:
        own = _own_codes(encounter, pack, _coded_key(encounter))
    found = gather_evidence(encounter, encounter_id, own.found, start, context, pack, outside)
    return _placement_of(encounter, own, found, pack)


def _placement_of(
    encounter: Mapping[str, Any], own: OwnCodes, found: Sequence[Found], pack: RulePack
) -> EncounterPlacement:
    """The placement an Encounter's status, own codes and evidence (`found`) decide."""
    status = encounter.get("status")
    flags: tuple[Flag, ...] = ()
    excluded = status in WITHDRAWN_STATUSES
    if excluded:
        placed = Placed(
            Job.UNCLASSIFIED,
            "encounter.status.not-care",
            f"Encounter.status is {status}: no care took place",
            (),
        )
    else:
        if status in UPCOMING_STATUSES:
            flags = (Flag.UPCOMING,)
        placed = decide(found, own.setting, pack, upcoming=bool(flags))
    return EncounterPlacement(
        placed,
        own.title,
        own.setting,
        _unique([f.code.token for f in found if f.element in CONCERN_ELEMENTS]),
        flags,
        excluded,
    )


def _own_codes(encounter: Mapping[str, Any], pack: RulePack, key: bytes | None) -> OwnCodes:
    """The Encounter's own codes, from the pack's table keyed by its coded elements."""
    table = pack.encounter_decisions.own_codes
    own = table.get(key) if key is not None else None
    if own is None:
        own = _read_own_codes(encounter, pack)
        if key is not None:
            remember(table, key, own)
    return own


def _read_own_codes(encounter: Mapping[str, Any], pack: RulePack) -> OwnCodes:
    class_code = coding(encounter.get("class"))
    if class_code is not None and class_code.system is None and class_code.code:
        # Encounter.class is bound to v3 ActEncounterCode; many senders omit the system.
        class_code = Code(ACTCODE, class_code.code, class_code.display)
    setting = pack.encounter_settings.get(class_code.code or "") if class_code else None
    found: list[Found] = []
    if class_code:
        found.append(Found("class", class_code, None))
    for code in concepts_codes(encounter.get("type")):
        found.append(Found("type", code, None))
    service_type = encounter.get("serviceType")
    if service_type is not None:
        for code in concept_codes(service_type):
            found.append(Found("serviceType", code, None))
    for code in concepts_codes(encounter.get("reasonCode")):
        found.append(Found("reasonCode", code, None))
    kept = tuple(usable(found, pack))
    has_reason = any(f.element == "reasonCode" for f in kept)
    return OwnCodes(setting, _title(encounter, setting), kept, has_reason)


_NO_CONTEXT = EncounterContext()


def _outside_evidence(encounter: Mapping[str, Any], context: EncounterContext) -> list[Evidence]:
    """The Conditions the Encounter names and the evidence naming it, each resource once."""
    if not (context.conditions or context.linked):
        return []
    conditions = context.conditions
    # Its references are read only when there are Conditions they could name.
    named = (
        [conditions[c] for c in referenced_condition_ids(encounter) if c in conditions]
        if conditions
        else []
    )
    seen: set[str] = set()
    outside: list[Evidence] = []
    for item in (*named, *context.linked):
        label = item.label
        if label not in seen:
            seen.add(label)
            outside.append(item)
    return outside


def gather_evidence(
    encounter: Mapping[str, Any],
    encounter_id: str,
    own: Sequence[Found],
    start: str | None,
    context: EncounterContext,
    pack: RulePack,
    outside: Sequence[Evidence] | None = None,
) -> list[Found]:
    """Every code that may place the encounter, with where it came from: its own codes
    (a reason read as known when the patient's earlier Conditions record it), then
    the Conditions it names and the evidence naming it (`outside`, when already read)."""
    day = start[:10] if start else None
    earliest = _earliest_by_code(context.history, encounter_id, day)
    found = list(own)
    if earliest:
        for position, reason in enumerate(found):
            if reason.element == "reasonCode":
                known, since = _known(reason.code, None, day, earliest)
                found[position] = Found("reasonCode", reason.code, None, known, since)
    if outside is None:
        outside = _outside_evidence(encounter, context)
    table = pack.encounter_decisions
    for item in outside:
        label, element = item.label, item.element
        for code in item.codes:
            # Unusable codes are dropped before their history is read.
            if not table.usable(code.system, code.code):
                continue
            known, since = (None, None)
            if element == "condition":
                known, since = _known(code, item, day, earliest)
            found.append(Found(element, code, label, known, since))
    return found


def usable(found: Iterable[Found], pack: RulePack) -> list[Found]:
    """The evidence that can place a record: coded, and not a code the pack ignores
    (social findings, vital signs, the parts of every visit)."""
    table = pack.encounter_decisions
    return [f for f in found if table.usable(f.code.system, f.code.code)]


def decide(found: Sequence[Found], setting: str | None, pack: RulePack, upcoming: bool) -> Placed:
    """The highest-priority rule the evidence matches (from the pack's decision table),
    with a reason naming every piece of evidence it used and the rules it outranked."""
    evidence = tuple((f.element, f.code.system or "", f.code.code or "", f.known) for f in found)
    decision = pack.encounter_decisions.decide(setting, evidence)
    if decision.rule is None:
        looked_at = decision.looked_at or "no codes at all"
        return Placed(
            Job.UNCLASSIFIED,
            "unclassified",
            f"No rule in pack {pack.label} matched ({looked_at})",
            (),
        )
    used = [found[position] for position in decision.used]
    reason = f"{decision.rule.reason} (matched {', '.join(_unique(_describe(f) for f in used))}"
    outranked = decision.outranked
    reason += f"; outranked {', '.join(outranked)})" if outranked else ")"
    if upcoming:
        reason = f"Planned, not yet happened. {reason}"
    return Placed(decision.rule.job, decision.rule.id, reason, _unique(f.code.token for f in used))


def place(
    record: JobRecord, found: Sequence[Found], setting: str | None, pack: RulePack
) -> JobRecord:
    """The record placed by the highest-priority rule its evidence matches."""
    placed = decide(found, setting, pack, upcoming=Flag.UPCOMING in record.flags)
    return replace(
        record,
        job=placed.job,
        rule_id=placed.rule_id,
        reason=placed.reason,
        matched_codes=placed.matched_codes,
    )


def _describe(item: Found) -> str:
    text = f"{item.element} {item.code.token}"
    if item.source:
        text += f" ({item.source})"
    if item.known and item.since:
        text += f", known since {item.since}"
    return text


def _earliest_by_code(
    history: Sequence[Evidence], encounter_id: str, visit_day: str | None
) -> dict[tuple[str, str], str]:
    """(system, code) -> the earliest day the patient's Conditions record it, other than
    those recorded at this encounter and episodes that ended before the visit."""
    earliest: dict[tuple[str, str], str] = {}
    for item in history:
        if item.recorded is None or item.encounter_id == encounter_id:
            continue
        day = item.recorded[:10]
        if item.ended is not None and visit_day is not None and item.ended[:10] < visit_day:
            continue  # an episode that ended before the visit (a cold last winter)
        for code in item.codes:
            if code.system and code.code:
                key = (code.system, normalise_code(code.system, code.code))
                if key not in earliest or day < earliest[key]:
                    earliest[key] = day
    return earliest


def _known(
    code: Code, item: Evidence | None, day: str | None, earliest: Mapping[tuple[str, str], str]
) -> tuple[bool | None, str | None]:
    """Was this concern known before the visit's day? From the Condition's own date, else
    from the patient's other Conditions with the same code."""
    if day is None or not code.system or not code.code:
        return None, None
    before = earliest.get((code.system, normalise_code(code.system, code.code)))
    if before is not None and before < day:
        return True, before
    if item is not None and item.recorded is not None:
        recorded = item.recorded[:10]
        if recorded < day:
            return True, recorded
        return False, None
    return None, None


def _title(encounter: Mapping[str, Any], setting: str | None) -> str:
    types = encounter.get("type")
    label = concept_label(types[0]) if isinstance(types, list) and types else None
    if label is None:
        label = f"{setting.capitalize()} encounter" if setting else "Encounter"
    reasons = encounter.get("reasonCode")
    reason = concept_label(reasons[0]) if isinstance(reasons, list) and reasons else None
    return f"{label}: {reason}" if reason and reason != label else label


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))
