"""QuestionnaireResponses and instrument totals sent as Observations -> job records.

Instruments (PHQ-9, GAD-7, ...) come from the rule pack and are scored by
`mappings.instruments`. Whether a screen is new (diagnose when positive,
prevention when negative) or monitors an ongoing concern (keep_well) depends on
the patient's earlier screens, and an amended response replaces the one it
amends, so all of one patient's responses and total Observations are mapped
together, in time order, by `map_instrument_responses`.

Status comes first: an entered-in-error response leaves the journey, an
in-progress or stopped one is not a whole screen (no score), and a safety item
answered above "not at all" flags the record whatever else holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from mappings.dates import instant_bounds, parse_interval
from mappings.errors import FhirDateError
from mappings.evidence import Evidence
from mappings.fhir_values import WITHDRAWN_STATUSES, coding, element_at, reference_id
from mappings.instruments import (
    Answer,
    Measurement,
    identify_instrument,
    measure_response,
    measure_total_observation,
    member_answers,
    named_instrument,
    positional_answers,
    quick_measure,
    read_answers,
)
from mappings.model import Flag, Job, JobRecord, ScaleScore, SourceRef
from mappings.rulepack import Instrument, QuestionnaireRule, RulePack, Scale

FULFILMENT_RANGE = range(1, 6)
LOINC = "http://loinc.org"


def fulfilment_score(answers: Sequence[Answer], pack: RulePack) -> tuple[int | None, list[str]]:
    """The 1-5 job-fulfilment answer, if the response has one."""
    for answer in answers:
        if answer.code != pack.fulfilment_score_item:
            continue
        value = _plain_number(answer.value)
        if value is None and (code := coding(answer.value.get("valueCoding"))) and code.code:
            value = int(code.code) if code.code.isdigit() else None
        if value in FULFILMENT_RANGE:
            return value, []
        return None, [f"{answer.path}: job-fulfilment answer is not 1-5; ignored"]
    return None, []


def _hired_job(answers: Sequence[Answer], pack: RulePack) -> Job | None:
    for answer in answers:
        if answer.code == pack.fulfilment_job_item:
            code = coding(answer.value.get("valueCoding"))
            if (
                code
                and code.system == pack.fulfilment_job_system
                and code.code
                in (
                    Job.DIAGNOSE,
                    Job.TREAT,
                    Job.KEEP_WELL,
                )
            ):
                return Job(code.code)
    return None


@dataclass(slots=True)
class _Prepared:
    """A response or total read and scored, before it is placed among the patient's
    others; `record` makes its job record (one construction per record). Not frozen:
    internal to this module, made once per resource, never changed."""

    ref: SourceRef
    resource: Mapping[str, Any]
    when: datetime | None
    start: str | None
    end: str | None
    subject_id: str | None
    measurement: Measurement | None
    answers: list[Answer]
    fulfilment_survey: bool
    fulfilment_score: int | None
    warnings: tuple[str, ...]
    pack_version: str
    # The first scale's score (the record's `score`) and its whole-number value: read
    # once, for the record and for matching a total to its response.
    primary: ScaleScore | None
    score: int | None

    @property
    def instrument_id(self) -> str | None:
        return self.measurement.instrument.id if self.measurement else None

    def record(
        self,
        rule_id: str,
        reason: str,
        job: Job = Job.UNCLASSIFIED,
        title: str | None = None,
        flags: tuple[Flag, ...] | None = None,
        excluded: bool = False,
    ) -> JobRecord:
        measurement = self.measurement
        instrument = measurement.instrument if measurement else None
        primary = self.primary
        if title is None:
            title = f"{instrument.name} questionnaire" if instrument else "Questionnaire"
        if flags is None:
            flags = measurement.flags if measurement else ()
        # Positional, in JobRecord's field order (see there why): one per response.
        return JobRecord(
            job,  # job
            self.ref,  # source_ref
            self.subject_id,  # subject_id
            self.start,  # occurred_start
            self.end,  # occurred_end
            title,  # title
            "questionnaire",  # setting
            instrument.concern if instrument else (),  # concern_codes
            rule_id,  # rule_id
            self.pack_version,  # pack_version
            reason,  # reason
            (),  # matched_codes
            instrument.id if instrument else None,  # instrument
            self.score,  # score
            self.fulfilment_score,  # fulfilment_score
            self.warnings,  # warnings
            flags,  # flags
            excluded,  # excluded
            primary.band if primary else None,  # band
            instrument.version if instrument else None,  # instrument_version
            measurement.scores if measurement else (),  # scores
        )


def map_instrument_responses(
    resources: Sequence[tuple[SourceRef, Mapping[str, Any]]],
    pack: RulePack,
    conditions: Sequence[Evidence] = (),
    panel: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[JobRecord]:
    """Map all QuestionnaireResponses and total Observations of one patient (in one
    source), earliest first. Observations that carry no instrument total give no record.

    `conditions` are the patient's Conditions: a screen for a concern diagnosed before
    it monitors that concern. `panel` holds the item Observations total Observations
    name in `hasMember`, by id (their safety items are read)."""
    panel = panel or {}
    prepared = [p for ref, resource in resources if (p := _prepare(ref, resource, pack, panel))]
    prepared.sort(key=lambda p: (p.start or "", p.ref.resource_id))
    superseded_by = _amendments(prepared)
    duplicates = _totals_of_responses(prepared)
    window = timedelta(days=pack.monitoring_window_days)
    last_positive: dict[tuple[str, ...], datetime] = {}
    records: list[JobRecord] = []
    for item in prepared:
        by = superseded_by.get(item.ref.resource_id)
        if by is not None:
            # Kept in the journey as what was recorded then, flagged: the amended
            # response carries the current answers.
            # What it said then does not open a window for the amended one.
            placed = _classify(item, pack, window, dict(last_positive), conditions)
            records.append(
                replace(
                    placed,
                    flags=(*placed.flags, Flag.SUPERSEDED),
                    reason=f"{placed.reason}; superseded by the amended QuestionnaireResponse {by}",
                )
            )
            continue
        same = duplicates.get(item.ref.resource_id)
        if same is not None:
            records.append(
                item.record(
                    "questionnaire.total-of-a-response",
                    f"The total of QuestionnaireResponse {same}, which is in the "
                    "journey itself: one measurement, shown once",
                    excluded=True,
                )
            )
            continue
        records.append(_classify(item, pack, window, last_positive, conditions))
    return records


def _totals_of_responses(prepared: Sequence[_Prepared]) -> dict[str, str]:
    """Total Observation id -> the response it restates: named in `derivedFrom`, or the
    same instrument, day and score (EHRs and Synthea send both for one screen)."""
    responses = {
        p.ref.resource_id: p
        for p in prepared
        if p.ref.resource_type == "QuestionnaireResponse" and p.measurement is not None
    }
    # (day, instrument, score) -> the earliest such response: each total is then matched
    # in one lookup, not by comparing it with every response of the patient.
    by_day: dict[tuple[str, str | None, int | None], str] = {}
    for rid, response in responses.items():
        by_day.setdefault(
            ((response.start or "")[:10], response.instrument_id, response.score), rid
        )
    found: dict[str, str] = {}
    for item in prepared:
        if item.ref.resource_type != "Observation" or item.measurement is None:
            continue
        derived = item.resource.get("derivedFrom")
        for reference in derived if isinstance(derived, list) else ():
            named = reference_id(reference, "QuestionnaireResponse")
            if named in responses:
                found[item.ref.resource_id] = named
                break
        else:
            day = (item.start or "")[:10]
            same = by_day.get((day, item.instrument_id, item.score)) if day else None
            if same is not None:
                found[item.ref.resource_id] = same
    return found


def _prepare(
    ref: SourceRef,
    resource: Mapping[str, Any],
    pack: RulePack,
    panel: Mapping[str, Mapping[str, Any]],
) -> _Prepared | None:
    answers: list[Answer] = []
    score: int | None = None
    survey = False
    measurement: Measurement | None
    if ref.resource_type == "Observation":
        total = instrument_total(resource, pack)
        if total is None:
            return None
        code, (total_of, scale) = total
        named = [
            (member_id, panel[member_id])
            for reference in resource.get("hasMember") or ()
            if (member_id := reference_id(reference, "Observation")) is not None
            and member_id in panel
        ]
        measurement = measure_total_observation(
            resource, code, total_of, scale, member_answers(named, total_of)
        )
        start, end, when, warnings = _when(resource, "Observation")
    else:
        start, end, when, warnings = _when(resource, "QuestionnaireResponse")
        measurement, answers, score, survey = _read_response(resource, pack, warnings)
    primary = measurement.primary if measurement else None
    # Positional: a class called with keywords packs them into a dict first.
    return _Prepared(
        ref,
        resource,
        when,
        start,
        end,
        reference_id(resource.get("subject"), "Patient"),
        measurement,
        answers,
        survey,
        score,
        (*warnings, *measurement.warnings) if measurement else tuple(warnings),
        pack.label,
        primary,
        int(primary.value) if primary and primary.value.is_integer() else None,
    )


def _read_response(
    resource: Mapping[str, Any], pack: RulePack, warnings: list[str]
) -> tuple[Measurement | None, list[Answer], int | None, bool]:
    """A QuestionnaireResponse's measurement, its answers (kept for a fulfilment survey),
    its fulfilment score and whether it is a fulfilment survey; adds its warnings."""
    survey = _is_fulfilment_survey(resource, pack)
    if not survey:
        named = named_instrument(resource, pack)
        if named is not None:
            # Most responses: scored in one walk, with nothing to warn about.
            quick = quick_measure(resource, named, pack.fulfilment_score_item)
            if quick is not None:
                return quick, [], None, False
    answers = read_answers(resource)
    score, fulfilment_warnings = fulfilment_score(answers, pack)
    warnings += fulfilment_warnings
    measurement = None
    if not survey:
        answered = identify_instrument(resource, answers, pack)
        if answered is not None:
            # Named by its canonical but with the sender's own linkIds ("1".."9").
            in_order = positional_answers(answers, answered)
            if in_order is not None:
                answers = in_order
                warnings.append(
                    f"QuestionnaireResponse.item: linkIds are not {answered.name} item "
                    "codes; read in the instrument's item order"
                )
            measurement = measure_response(answers, answered, resource.get("status"))
    return measurement, answers, score, survey


# Where a time is read from, in order: the first present one is the record's time.
_TIME_ELEMENTS = {
    "Observation": ("effectiveDateTime", "effectivePeriod.start", "effectiveInstant", "issued"),
    "QuestionnaireResponse": ("authored",),
}


def _when(
    resource: Mapping[str, Any], resource_type: str
) -> tuple[str | None, str | None, datetime | None, list[str]]:
    names = _TIME_ELEMENTS[resource_type]
    for name in names:
        value = (
            element_at(resource, "effectivePeriod", "start")
            if name == "effectivePeriod.start"
            else resource.get(name)
        )
        if isinstance(value, str):
            instant = instant_bounds(value)
            if instant is not None:  # the common shape, without building an interval
                return (*instant, [])
            try:
                interval = parse_interval(value, f"{resource_type}.{name}")
            except FhirDateError as exc:
                return None, None, None, [str(exc)]
            warnings = [interval.warning] if interval.warning else []
            return interval.start_iso, interval.end_iso, interval.start, warnings
    return None, None, None, [f"{resource_type}.{'/'.join(names)}: missing; the record has no time"]


def instrument_total(
    resource: Mapping[str, Any], pack: RulePack
) -> tuple[str, tuple[Instrument, Scale]] | None:
    """The LOINC code and the scale of an Observation that carries an instrument's total."""
    # Asked of every Observation (most are labs and vital signs): the codings are read
    # as they are, without making a Code of each.
    concept = resource.get("code")
    codings = concept.get("coding") if isinstance(concept, dict) else None
    if not isinstance(codings, list):
        return None
    totals = pack.total_codes
    for coded in codings:
        if isinstance(coded, dict) and coded.get("system") == LOINC:
            code = coded.get("code")
            if isinstance(code, str) and code in totals:
                return code, totals[code]
    return None


def _is_fulfilment_survey(resource: Mapping[str, Any], pack: RulePack) -> bool:
    questionnaire = resource.get("questionnaire")
    if not isinstance(questionnaire, str):
        # Not a canonical: no fulfilment survey's URL, whatever its text.
        return False
    # Split only a versioned canonical ("url|1.0"); most carry no version.
    canonical = questionnaire.split("|", 1)[0] if "|" in questionnaire else questionnaire
    return bool(canonical) and canonical in pack.fulfilment_questionnaires


def _amendments(prepared: Sequence[_Prepared]) -> dict[str, str]:
    """Earlier response id -> the amended response that replaces it: same identifier,
    or, without one, the same questionnaire in the same encounter."""
    replaced: dict[str, str] = {}
    for later in prepared:
        if later.ref.resource_type != "QuestionnaireResponse":
            continue
        if later.resource.get("status") != "amended":
            continue
        key = _amendment_key(later.resource)
        if key is None:
            continue
        for earlier in prepared:
            if earlier is later or earlier.ref.resource_type != "QuestionnaireResponse":
                continue
            if (earlier.start or "") > (later.start or ""):
                continue
            if _amendment_key(earlier.resource) == key:
                replaced.setdefault(earlier.ref.resource_id, later.ref.resource_id)
    return replaced


def _amendment_key(response: Mapping[str, Any]) -> tuple[str, ...] | None:
    identifier = response.get("identifier")
    if isinstance(identifier, dict):
        system, value = identifier.get("system"), identifier.get("value")
        if isinstance(value, str):
            return ("identifier", str(system), value)
    questionnaire = response.get("questionnaire")
    encounter = reference_id(response.get("encounter"), "Encounter")
    if isinstance(questionnaire, str) and encounter:
        return ("encounter", questionnaire.split("|", 1)[0], encounter)
    return None


def _classify(
    item: _Prepared,
    pack: RulePack,
    window: timedelta,
    last_positive: dict[tuple[str, ...], datetime],
    conditions: Sequence[Evidence] = (),
) -> JobRecord:
    resource = item.resource
    kind = item.ref.resource_type
    status = resource.get("status")
    if status in WITHDRAWN_STATUSES:
        return item.record(
            "questionnaire.status.withdrawn",
            f"{kind}.status is {status}: not part of the journey",
            flags=(),
            excluded=True,
        )
    if item.fulfilment_survey:
        return _fulfilment_record(item, pack)
    measurement = item.measurement
    if measurement is None:
        return item.record(
            "unclassified",
            f"Questionnaire is not an instrument of pack {pack.label} "
            "(no known canonical URL and too few known item linkIds)",
        )
    instrument = measurement.instrument
    safety = "; ".join(measurement.safety_reasons)
    flagged = f"; {safety}" if safety else ""
    primary = item.primary
    family = instrument.concern or (instrument.id,)
    known = _known_concern(instrument, conditions, item.start)
    if primary is None:
        missing = measurement.missing or "no answer could be scored"
        detail = f"{instrument.name} not complete: {missing}; no score"
        if safety:
            rule = pack.questionnaire_rules["safety_screen"]
        elif known and instrument.purpose == "screen":
            rule = pack.questionnaire_rules["monitoring"]
            detail += f"; {known}"
        elif instrument.purpose == "screen":
            rule = pack.questionnaire_rules["incomplete_screen"]
        else:
            return item.record(
                "questionnaire.incomplete",
                f"{instrument.name} is not a complete measure ({missing}): no score",
                title=f"{instrument.name} (incomplete)",
            )
        return _placed(item, rule, f"{instrument.name} (incomplete)", f"{detail}{flagged}")

    scale = instrument.scales[0]
    value_text = f"{primary.value:g}"
    score_text = f"{instrument.name} score {value_text} of {scale.range_text}"
    if primary.band:
        score_text += f", {primary.band}"
    score_text += f" ({measurement.evidence})"
    if instrument.purpose == "outcome":
        rule = pack.questionnaire_rules["outcome_measure"]
        return _placed(item, rule, f"{instrument.name}", f"{score_text}{flagged}")
    if instrument.purpose == "experience":
        rule = pack.questionnaire_rules["experience_rating"]
        return _placed(item, rule, f"{instrument.name}", score_text)

    positive = scale.positive_at is not None and primary.value >= scale.positive_at
    since = last_positive.get(family)
    ongoing = item.when is not None and since is not None and item.when - since <= window
    if (positive or safety) and item.when is not None:
        last_positive[family] = item.when
    if known:
        ongoing = True
        rule = pack.questionnaire_rules["monitoring"]
        detail = f"{score_text}; {known}"
    elif ongoing:
        rule = pack.questionnaire_rules["monitoring"]
        detail = (
            f"{score_text}; a positive screen for the same concern within {window.days} days before"
        )
    elif safety:
        rule = pack.questionnaire_rules["safety_screen"]
        detail = score_text
    elif positive:
        rule = pack.questionnaire_rules["positive_screen"]
        detail = f"{score_text}; positive at {scale.positive_at:g}"
    else:
        rule = pack.questionnaire_rules["negative_screen"]
        detail = f"{score_text}; below {scale.positive_at:g}" if scale.positive_at else score_text
    title = f"{instrument.name} {'monitoring' if ongoing else 'screening'}"
    return _placed(item, rule, title, f"{detail}{flagged}")


def _known_concern(
    instrument: Instrument, conditions: Sequence[Evidence], when: str | None
) -> str | None:
    """'a known concern: Condition/x since D' when the patient had a Condition the
    instrument measures, recorded before the day of the response."""
    if instrument.concern_codes is None or when is None:
        return None
    day = when[:10]
    for condition in conditions:
        if condition.recorded is None or condition.recorded[:10] >= day:
            continue
        for code in condition.codes:
            if code.system and code.code and (code.system, code.code) in instrument.concern_codes:
                return f"a known concern: {condition.label} since {condition.recorded[:10]}"
    return None


def _placed(item: _Prepared, rule: QuestionnaireRule, title: str, detail: str) -> JobRecord:
    return item.record(rule.id, f"{rule.reason} ({detail})", rule.job or Job.UNCLASSIFIED, title)


def _fulfilment_record(item: _Prepared, pack: RulePack) -> JobRecord:
    rule = pack.questionnaire_rules["fulfilment_survey"]
    job = _hired_job(item.answers, pack)
    if job is None:
        return item.record(
            "unclassified",
            f"Fulfilment survey without a '{pack.fulfilment_job_item}' answer "
            "naming diagnose, treat or keep_well",
            title="Job-fulfilment survey",
        )
    score = f"{item.fulfilment_score}/5" if item.fulfilment_score else "no score"
    return item.record(
        rule.id,
        f"{rule.reason} (hired for {job}, fulfilment {score})",
        job,
        "Job-fulfilment survey",
    )


def _plain_number(answer: Mapping[str, Any]) -> int | None:
    value = answer.get("valueInteger")
    return value if isinstance(value, int) and not isinstance(value, bool) else None
