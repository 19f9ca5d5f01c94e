"""QuestionnaireResponse -> job records: scored screening instruments and fulfilment surveys.

Scores are computed from the answers (nested `item`s and answers' own
`item`s included), not trusted from a total field. Whether a PHQ-9 or GAD-7
is a new screen (diagnose when positive, prevention when negative) or the
monitoring of an ongoing concern (keep_well) depends on the patient's earlier
responses, so the responses of one patient are mapped together, in time
order, by `map_questionnaire_responses`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from mappings.dates import parse_interval
from mappings.errors import FhirDateError
from mappings.fhir_values import coding, reference_id
from mappings.model import Job, JobRecord, SourceRef
from mappings.rulepack import Instrument, RulePack

ORDINAL_EXTENSIONS = frozenset(
    {
        "http://hl7.org/fhir/StructureDefinition/ordinalValue",
        "http://hl7.org/fhir/StructureDefinition/itemWeight",
    }
)
FULFILMENT_RANGE = range(1, 6)


@dataclass(frozen=True, slots=True)
class Answer:
    """One answer with its item's linkId (`code`: the last part of a path-like
    linkId, as LHC-Forms writes "/44249-1/44250-9") and its FHIR path."""

    link_id: str
    code: str
    path: str
    value: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Screening:
    """A scored instrument: `score` is None when no answer could be scored."""

    instrument: Instrument
    score: int | None
    answered: int
    warnings: tuple[str, ...]


def read_answers(response: Mapping[str, Any]) -> list[Answer]:
    """Every answer in a response, however deeply nested, with its FHIR path.

    Read once per response; scoring and classification then work on the list.
    """
    found: list[Answer] = []

    def walk(items: Any, path: str) -> None:
        if not isinstance(items, list):
            return
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                continue
            item_path = f"{path}.item[{i}]"
            link_id = item.get("linkId")
            answers = item.get("answer")
            if isinstance(answers, list):
                for j, answer in enumerate(answers):
                    if not isinstance(answer, dict):
                        continue
                    answer_path = f"{item_path}.answer[{j}]"
                    if isinstance(link_id, str):
                        code = link_id.rstrip("/").rsplit("/", 1)[-1]
                        found.append(Answer(link_id, code, answer_path, answer))
                    if "item" in answer:
                        walk(answer["item"], answer_path)
            if "item" in item:
                walk(item["item"], item_path)

    walk(response.get("item"), "QuestionnaireResponse")
    return found


def identify_instrument(
    response: Mapping[str, Any], answers: Sequence[Answer], pack: RulePack
) -> Instrument | None:
    """The instrument a response answers: by its `questionnaire` canonical, else its linkIds."""
    canonical = response.get("questionnaire")
    if isinstance(canonical, str):
        url = canonical.split("|", 1)[0].rstrip("/")
        for instrument in pack.instruments:
            for known in instrument.questionnaires:
                if url == known or url.endswith("/" + known):
                    return instrument
    codes = {answer.code for answer in answers}
    for instrument in pack.instruments:
        if len(codes & instrument.scored_items) * 2 > len(instrument.scored_items):
            return instrument
    return None


def answer_score(answer: Mapping[str, Any], pack: RulePack) -> int | None:
    """An answer's weight: valueInteger, an ordinal extension, or the pack's answer table."""
    integer = answer.get("valueInteger")
    if integer is not None:
        return integer if isinstance(integer, int) else None
    value = answer.get("valueCoding")
    if not isinstance(value, dict):
        return None
    extensions = value.get("extension")
    if isinstance(extensions, list):
        for extension in extensions:
            if isinstance(extension, dict) and extension.get("url") in ORDINAL_EXTENSIONS:
                weight = extension.get("valueDecimal", extension.get("valueInteger"))
                if isinstance(weight, int | float) and float(weight).is_integer():
                    return int(weight)
    system, code = value.get("system"), value.get("code")
    if isinstance(system, str) and isinstance(code, str):
        return pack.answer_scores.get((system, code))
    return None


def score_instrument(
    answers: Sequence[Answer], instrument: Instrument, pack: RulePack
) -> Screening:
    total = 0
    answered = 0
    given_total: int | None = None
    warnings: list[str] = []
    for answer in answers:
        if answer.code == instrument.total_item:
            value = answer_score(answer.value, pack)
            given_total = value if value is not None else given_total
            continue
        if answer.code not in instrument.scored_items:
            continue
        value = answer_score(answer.value, pack)
        if value is None or not 0 <= value <= 3:
            warnings.append(f"{answer.path}: answer has no score on the 0-3 scale; not counted")
            continue
        total += value
        answered += 1
    if answered == 0:
        if given_total is not None and 0 <= given_total <= instrument.max_score:
            warnings.append(f"{instrument.name}: no item answers; used the total score item")
            return Screening(instrument, given_total, 0, tuple(warnings))
        return Screening(instrument, None, 0, tuple(warnings))
    missing = len(instrument.scored_items) - answered
    if missing > 0:
        count = len(instrument.scored_items)
        warnings.append(f"{instrument.name}: {missing} of {count} items unanswered")
    if given_total is not None and given_total != total:
        warnings.append(
            f"{instrument.name}: total score item differs from the sum of the answers; used the sum"
        )
    return Screening(instrument, total, answered, tuple(warnings))


def fulfilment_score(answers: Sequence[Answer], pack: RulePack) -> tuple[int | None, list[str]]:
    """The 1-5 job-fulfilment answer, if the response has one."""
    for answer in answers:
        if answer.code != pack.fulfilment_score_item:
            continue
        value = answer_score(answer.value, pack)
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


@dataclass(frozen=True, slots=True)
class _Prepared:
    ref: SourceRef
    response: Mapping[str, Any]
    answers: list[Answer]
    when: datetime | None
    base: JobRecord


def map_questionnaire_responses(
    responses: Sequence[tuple[SourceRef, Mapping[str, Any]]], pack: RulePack
) -> list[JobRecord]:
    """Map all responses of one patient (in one source), earliest first."""
    prepared = [_prepare(ref, response, pack) for ref, response in responses]
    prepared.sort(key=lambda p: (p.base.occurred_start or "", p.ref.resource_id))
    window = timedelta(days=pack.monitoring_window_days)
    last_positive: dict[str, datetime] = {}
    records: list[JobRecord] = []
    for item in prepared:
        records.append(_classify(item, pack, window, last_positive))
    return records


def _prepare(ref: SourceRef, response: Mapping[str, Any], pack: RulePack) -> _Prepared:
    warnings: list[str] = []
    when: datetime | None = None
    start = end = None
    authored = response.get("authored")
    if isinstance(authored, str):
        try:
            interval = parse_interval(authored, "QuestionnaireResponse.authored")
            when, start, end = interval.start, interval.start_iso, interval.end_iso
            if interval.warning:
                warnings.append(interval.warning)
        except FhirDateError as exc:
            warnings.append(str(exc))
    else:
        warnings.append("QuestionnaireResponse.authored: missing; the record has no time")
    answers = read_answers(response)
    score, fulfilment_warnings = fulfilment_score(answers, pack)
    warnings.extend(fulfilment_warnings)
    base = JobRecord(
        job=Job.UNCLASSIFIED,
        source_ref=ref,
        subject_id=reference_id(response.get("subject"), "Patient"),
        occurred_start=start,
        occurred_end=end,
        title="Questionnaire",
        setting="questionnaire",
        concern_codes=(),
        rule_id="unclassified",
        pack_version=pack.label,
        reason="",
        fulfilment_score=score,
        warnings=tuple(warnings),
    )
    return _Prepared(ref, response, answers, when, base)


def _classify(
    item: _Prepared, pack: RulePack, window: timedelta, last_positive: dict[str, datetime]
) -> JobRecord:
    response, base = item.response, item.base
    canonical = str(response.get("questionnaire") or "").split("|", 1)[0]
    if canonical and canonical in pack.fulfilment_questionnaires:
        rule = pack.questionnaire_rules["fulfilment_survey"]
        job = _hired_job(item.answers, pack)
        if job is None:
            return replace(
                base,
                title="Job-fulfilment survey",
                reason=f"Fulfilment survey without a '{pack.fulfilment_job_item}' answer "
                "naming diagnose, treat or keep_well",
            )
        score = f"{base.fulfilment_score}/5" if base.fulfilment_score else "no score"
        return replace(
            base,
            job=job,
            title="Job-fulfilment survey",
            rule_id=rule.id,
            reason=f"{rule.reason} (hired for {job}, fulfilment {score})",
        )

    instrument = identify_instrument(response, item.answers, pack)
    if instrument is None:
        return replace(
            base,
            reason=f"Questionnaire is not an instrument of pack {pack.label} "
            "(no known canonical URL and too few known item linkIds)",
        )
    screening = score_instrument(item.answers, instrument, pack)
    base = replace(
        base,
        title=f"{instrument.name} questionnaire",
        concern_codes=instrument.concern,
        instrument=instrument.id,
        score=screening.score,
        warnings=base.warnings + screening.warnings,
    )
    if screening.score is None:
        return replace(base, reason=f"{instrument.name} response has no answer that can be scored")

    positive = screening.score >= instrument.positive_at
    score_text = f"{instrument.name} score {screening.score}/{instrument.max_score}"
    since = last_positive.get(instrument.id)
    ongoing = item.when is not None and since is not None and item.when - since <= window
    if positive and item.when is not None:
        last_positive[instrument.id] = item.when
    if ongoing:
        rule = pack.questionnaire_rules["monitoring"]
        detail = f"{score_text}; a positive {instrument.name} within {window.days} days before"
    elif positive:
        rule = pack.questionnaire_rules["positive_screen"]
        detail = f"{score_text} >= {instrument.positive_at}"
    else:
        rule = pack.questionnaire_rules["negative_screen"]
        detail = f"{score_text} < {instrument.positive_at}"
    assert rule.job is not None  # checked: only the fulfilment survey takes its job from answers
    return replace(
        base,
        job=rule.job,
        title=f"{instrument.name} {'monitoring' if ongoing else 'screening'}",
        rule_id=rule.id,
        reason=f"{rule.reason} ({detail})",
    )
