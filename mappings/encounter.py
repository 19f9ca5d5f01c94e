"""Encounter -> one job record, placed by class, type, serviceType, reason and concern.

Every element's codes are looked up in the pack's compiled indexes; of the
rules that match, the highest priority wins (ties: the one listed first in
the pack), and the record names the codes it matched and the rules it
outranked. Nothing matched -> an `unclassified` record that lists what was
looked at.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from mappings.dates import period_interval
from mappings.fhir_values import (
    Code,
    coding,
    concept_label,
    concepts_codes,
    reference_id,
)
from mappings.model import Job, JobRecord, SourceRef
from mappings.rulepack import ACTCODE, EncounterRule, RulePack

# Statuses that say no care happened; such an Encounter is not evidence of a job.
NOT_CARE_STATUSES = frozenset({"cancelled", "entered-in-error"})


@dataclass(frozen=True, slots=True)
class EncounterContext:
    """What mapping an Encounter needs from outside it: the codes of the
    Conditions its `diagnosis` and `reasonReference` point to, by Condition id."""

    condition_codes: Mapping[str, Sequence[Code]] = field(default_factory=dict)


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
    context = context or EncounterContext()
    class_code = coding(encounter.get("class"))
    if class_code is not None and class_code.system is None and class_code.code:
        # Encounter.class is bound to v3 ActEncounterCode; many senders omit the system.
        class_code = Code(ACTCODE, class_code.code, class_code.display)
    condition_codes = [
        code
        for condition_id in referenced_condition_ids(encounter)
        for code in context.condition_codes.get(condition_id, ())
    ]
    elements: dict[str, list[Code]] = {
        "class": [class_code] if class_code else [],
        "type": list(concepts_codes(encounter.get("type"))),
        "serviceType": list(concepts_codes([encounter.get("serviceType")])),
        "reasonCode": list(concepts_codes(encounter.get("reasonCode"))),
        "condition": condition_codes,
    }
    start, end, warnings = period_interval(
        _get(encounter, "period", "start"), _get(encounter, "period", "end"), "Encounter.period"
    )
    if start is None:
        warnings.append("Encounter.period.start: missing; the record has no time")
    concern = _unique(c.token for c in elements["reasonCode"] + condition_codes if c.code)
    setting = pack.encounter_settings.get(class_code.code or "") if class_code else None
    unclassified = JobRecord(
        job=Job.UNCLASSIFIED,
        source_ref=ref,
        subject_id=reference_id(encounter.get("subject"), "Patient"),
        occurred_start=start,
        occurred_end=end,
        title=_title(encounter, setting),
        setting=setting,
        concern_codes=concern,
        rule_id="unclassified",
        pack_version=pack.label,
        reason="",
        warnings=tuple(warnings),
    )
    status = encounter.get("status")
    if status in NOT_CARE_STATUSES:
        return replace(
            unclassified,
            rule_id="encounter.status.not-care",
            reason=f"Encounter.status is {status}: no care took place",
        )

    matches = list(_matches(elements, pack))
    if not matches:
        looked_at = "; ".join(
            f"{name} {', '.join(c.token for c in codes)}"
            for name, codes in elements.items()
            if codes
        )
        return replace(
            unclassified,
            reason=f"No rule in pack {pack.label} matched ({looked_at or 'no codes at all'})",
        )
    best = min((rule for rule, _, _ in matches), key=lambda r: (-r.priority, r.order))
    matched = _unique(f"{element} {token}" for rule, element, token in matches if rule is best)
    outranked = _unique(rule.id for rule, _, _ in matches if rule.id != best.id)
    reason = f"{best.reason} (matched {', '.join(matched)}"
    reason += f"; outranked {', '.join(outranked)})" if outranked else ")"
    return replace(
        unclassified,
        job=best.job,
        rule_id=best.id,
        reason=reason,
        matched_codes=tuple(token.split(" ", 1)[1] for token in matched),
    )


def _matches(
    elements: Mapping[str, Sequence[Code]], pack: RulePack
) -> Iterable[tuple[EncounterRule, str, str]]:
    for element, codes in elements.items():
        index = pack.encounter_index[element]
        for code in codes:
            if code.system and code.code:
                for rule in index.lookup(code.system, code.code):
                    yield rule, element, code.token


def _title(encounter: Mapping[str, Any], setting: str | None) -> str:
    types = encounter.get("type")
    label = concept_label(types[0]) if isinstance(types, list) and types else None
    if label is None:
        label = f"{setting.capitalize()} encounter" if setting else "Encounter"
    reasons = encounter.get("reasonCode")
    reason = concept_label(reasons[0]) if isinstance(reasons, list) and reasons else None
    return f"{label}: {reason}" if reason and reason != label else label


def _get(resource: Mapping[str, Any], *path: str) -> Any:
    value: Any = resource
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))
