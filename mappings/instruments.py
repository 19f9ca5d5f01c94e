"""Scoring instruments from the rule pack: which instrument a response answers, what
each answer is worth, whether the response is whole, its scales' scores and bands,
and its safety items.

Pure functions over parsed JSON. Warnings and reasons name FHIR paths and item
codes (linkIds), never an answer's value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, NamedTuple

from mappings.decisions import remember
from mappings.model import Flag, ScaleScore
from mappings.rulepack import Instrument, RulePack, Scale

ORDINAL_EXTENSIONS = frozenset(
    {
        "http://hl7.org/fhir/StructureDefinition/ordinalValue",
        "http://hl7.org/fhir/StructureDefinition/itemWeight",
    }
)
# QuestionnaireResponse statuses of a whole response; in-progress and stopped are not.
COMPLETE_RESPONSE = frozenset({"completed", "amended"})
# Observation statuses whose value stands; registered and preliminary do not yet.
FINAL_OBSERVATION = frozenset({"final", "amended", "corrected"})


class Answer(NamedTuple):
    """One answer with its item's linkId (`code`: the last part of a path-like
    linkId, as LHC-Forms writes "/44249-1/44250-9") and its FHIR path.
    A named tuple: a response has many, and a tuple is the cheapest to make."""

    link_id: str
    code: str
    path: str
    value: Mapping[str, Any]


class Measurement(NamedTuple):
    """What one response or total Observation says on an instrument.

    `scores` is empty when no scale could be scored; `missing` says why (items
    unanswered, status), for the record's reason. A named tuple: one is made per
    response, and a frozen dataclass sets each field through object.__setattr__.
    """

    instrument: Instrument
    scores: tuple[ScaleScore, ...]
    flags: tuple[Flag, ...]
    safety_reasons: tuple[str, ...]
    missing: str | None
    evidence: str
    warnings: tuple[str, ...]

    @property
    def primary(self) -> ScaleScore | None:
        first = self.instrument.scales[0].id
        for score in self.scores:
            if score.scale == first:
                return score
        return None


def read_answers(response: Mapping[str, Any]) -> list[Answer]:
    """Every answer in a response, however deeply nested, with its FHIR path."""
    found: list[Answer] = []
    _walk(response.get("item"), "QuestionnaireResponse", found)
    return found


def _walk(items: Any, path: str, found: list[Answer]) -> None:
    if not isinstance(items, list):
        return
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        item_path = path + _ITEM_STEPS[i] if i < _STEPS else f"{path}.item[{i}]"
        answers = item.get("answer")
        if isinstance(answers, list):
            link_id = item.get("linkId")
            code = _item_code(link_id) if isinstance(link_id, str) else None
            for j, answer in enumerate(answers):
                if not isinstance(answer, dict):
                    continue
                answer_path = (
                    item_path + _ANSWER_STEPS[j] if j < _STEPS else f"{item_path}.answer[{j}]"
                )
                if code is not None:
                    # tuple.__new__ skips the named tuple's Python-level __new__.
                    found.append(tuple.__new__(Answer, (link_id, code, answer_path, answer)))
                if "item" in answer:
                    _walk(answer["item"], answer_path, found)
        if "item" in item:
            _walk(item["item"], item_path, found)


def quick_measure(
    response: Mapping[str, Any], instrument: Instrument, other_item: str
) -> Measurement | None:
    """`measure_response(read_answers(response), instrument, status)` in one walk over
    the items, for the response most are: every item answer read counts (a Coding from
    the instrument's list, in range), at least one does, and none answers `other_item`
    (the fulfilment item, read from the answers by the caller). None for any other
    response: read it the long way, which says what it could not read.

    Answers are neither collected nor given paths: only a warning needs a path, and a
    response that would warn goes the long way."""
    values: dict[str, int] = {}
    given: dict[str, float] = {}
    if not _score_items(response.get("item"), instrument, other_item, values, given):
        return None
    if not values:
        # Nothing under an item code: perhaps the sender's own linkIds, read by position.
        return None
    return _measured(values, given, [], instrument, response.get("status"))


def _score_items(
    items: Any,
    instrument: Instrument,
    other_item: str,
    values: dict[str, int],
    given: dict[str, float],
) -> bool:
    """Score answers into `values` and `given` in `read_answers`' order; False as soon
    as one needs the long way.

    Read and scored in one pass: the answer nearly all are (an item's first answer, a
    listed Coding alone) is scored here by one lookup of (item, system, code) in the
    instrument's table, without a call per answer; `_score_answer` reads any other."""
    if not isinstance(items, list):
        return True
    # Keyed by str tuples; looked up with whatever the answer holds (a miss is no match).
    item_scores: Mapping[tuple[Any, ...], int] = instrument.item_scores
    for item in items:
        if not isinstance(item, dict):
            continue
        answers = item.get("answer")
        if isinstance(answers, list):
            link_id = item.get("linkId")
            code = _item_code(link_id) if isinstance(link_id, str) else None
            for answer in answers:
                if not isinstance(answer, dict):
                    continue
                if code is not None:
                    plain = None
                    if len(answer) == 1 and code not in values and code != other_item:
                        coded = answer.get("valueCoding")
                        if type(coded) is dict and "extension" not in coded:
                            try:
                                plain = item_scores.get(
                                    (code, coded.get("system"), coded.get("code"))
                                )
                            except TypeError:  # a list or object where a code belongs
                                plain = None
                    if plain is not None:
                        values[code] = plain
                    elif not _score_answer(code, answer, instrument, other_item, values, given):
                        return False
                if "item" in answer and not _score_items(
                    answer["item"], instrument, other_item, values, given
                ):
                    return False
        if "item" in item and not _score_items(item["item"], instrument, other_item, values, given):
            return False
    return True


def _score_answer(
    code: str,
    answer: Mapping[str, Any],
    instrument: Instrument,
    other_item: str,
    values: dict[str, int],
    given: dict[str, float],
) -> bool:
    """`_read_values` for one answer, without warnings: False where it would warn."""
    if code == other_item:
        return False
    totals = instrument.total_items
    if code in totals:
        total = _number(answer)
        if total is not None:
            given.setdefault(totals[code].id, total)
        return True
    if code not in instrument.item_set or code in values:
        return True
    value = _listed_score(answer, instrument.answer_scores)
    if value is None:
        return False
    low, high = instrument.item_ranges.get(code, instrument.whole_range)
    if not low <= value <= high:
        return False
    values[code] = value
    return True


# The path steps of the first items and answers, made once: joining two strings costs
# less than formatting an index into one, for every answer of every response.
_STEPS = 64
_ITEM_STEPS = tuple(f".item[{i}]" for i in range(_STEPS))
_ANSWER_STEPS = tuple(f".answer[{j}]" for j in range(_STEPS))


@lru_cache(maxsize=1 << 12)
def _item_code(link_id: str) -> str:
    return link_id.rstrip("/").rsplit("/", 1)[-1]


def identify_instrument(
    response: Mapping[str, Any], answers: Sequence[Answer], pack: RulePack
) -> Instrument | None:
    """The instrument a response answers: by its `questionnaire` canonical, else by the
    instrument whose items its answers cover most (fewest items on a tie, so two PHQ
    items alone are a PHQ-2, not a partial PHQ-9)."""
    named = named_instrument(response, pack)
    if named is not None:
        return named
    codes = {answer.code for answer in answers}
    best: Instrument | None = None
    best_key = (0, 0)
    for instrument in pack.instruments:
        overlap = len(codes & instrument.item_set)
        if overlap < min(2, len(instrument.items)):
            continue
        key = (overlap, -len(instrument.items))
        if key > best_key:
            best, best_key = instrument, key
    return best


def named_instrument(response: Mapping[str, Any], pack: RulePack) -> Instrument | None:
    """The instrument a response's `questionnaire` canonical names, if any."""
    canonical = response.get("questionnaire")
    if not isinstance(canonical, str) or not canonical:
        return None
    if canonical not in pack.instrument_by_canonical:
        remember(pack.instrument_by_canonical, canonical, _named_instrument(canonical, pack))
    return pack.instrument_by_canonical[canonical]


def _named_instrument(canonical: str, pack: RulePack) -> Instrument | None:
    url = canonical.split("|", 1)[0].rstrip("/")
    for instrument in pack.instruments:
        for known in instrument.questionnaires:
            if url == known or url.endswith("/" + known):
                return instrument
    return None


def answer_value(answer: Answer, instrument: Instrument) -> tuple[int | None, str | None]:
    """An answer's value on the instrument's item scale, and a warning when it needed
    reading or could not be read."""
    value = answer.value
    integer = value.get("valueInteger")
    if isinstance(integer, int) and not isinstance(integer, bool):
        return integer, None
    decimal = value.get("valueDecimal")
    if isinstance(decimal, int | float) and float(decimal).is_integer():
        return int(decimal), None
    coded = value.get("valueCoding")
    if isinstance(coded, dict) and "extension" not in coded:
        # The common case, read first: a coded answer from the instrument's list.
        system, code = coded.get("system"), coded.get("code")
        if isinstance(system, str) and isinstance(code, str):
            known = instrument.answer_scores.get((system, code))
            if known is not None:
                return known, None
    where = f"{answer.path} (item {answer.code})"
    if not isinstance(coded, dict):
        return None, f"{where}: answer has no coded or numeric value; not counted"
    extensions = coded.get("extension")
    if isinstance(extensions, list):
        for extension in extensions:
            if isinstance(extension, dict) and extension.get("url") in ORDINAL_EXTENSIONS:
                weight = extension.get("valueDecimal", extension.get("valueInteger"))
                if isinstance(weight, int | float) and float(weight).is_integer():
                    return int(weight), None
    system, code = coded.get("system"), coded.get("code")
    if not isinstance(code, str):
        return None, f"{where}: valueCoding has no code; not counted"
    if not isinstance(system, str):
        found = instrument.answer_scores.get((None, code))
        if found is None:
            return None, (
                f"{where}: valueCoding has no system and its code is not in the "
                f"{instrument.name} answer list; not counted"
            )
        return found, (
            f"{where}: valueCoding has no system; its code was read from the "
            f"{instrument.name} answer list"
        )
    found = instrument.answer_scores.get((system, code))
    if found is None:
        return (
            None,
            f"{where}: answer code is not in the {instrument.name} answer list; not counted",
        )
    return found, None


def _listed_score(
    value: Mapping[str, Any], listed: Mapping[tuple[str | None, str], int]
) -> int | None:
    """The score of an answer that is only a Coding from the instrument's answer list,
    system and code, as most are; None for any other answer (`answer_value` reads it,
    with the warnings it needs): what `answer_value` returns for such an answer,
    without its checks."""
    if "valueInteger" in value or "valueDecimal" in value:
        return None
    coded = value.get("valueCoding")
    if not isinstance(coded, dict) or "extension" in coded:
        return None
    system, code = coded.get("system"), coded.get("code")
    if isinstance(system, str) and isinstance(code, str):
        return listed.get((system, code))
    return None


def measure_response(
    answers: Sequence[Answer], instrument: Instrument, status: object
) -> Measurement:
    """Score a QuestionnaireResponse's answers on `instrument`."""
    warnings: list[str] = []
    values: dict[str, int] = {}
    given: dict[str, float] = {}
    _read_values(answers, instrument, values, given, warnings)
    return _measured(values, given, warnings, instrument, status)


def _read_values(
    answers: Sequence[Answer],
    instrument: Instrument,
    values: dict[str, int],
    given: dict[str, float],
    warnings: list[str],
) -> None:
    """Each item's value (the first answer that can be read counts) into `values`, each
    restated total into `given` (by scale id), with the warnings of answers not read."""
    totals = instrument.total_items
    item_set = instrument.item_set
    listed = instrument.answer_scores
    ranges, whole_range = instrument.item_ranges, (instrument.low, instrument.high)
    for answer in answers:
        code = answer.code
        if code in totals:
            total = _number(answer.value)
            if total is not None:
                given.setdefault(totals[code].id, total)
            continue
        if code not in item_set or code in values:
            continue
        value = _listed_score(answer.value, listed)
        if value is None:
            value, warning = answer_value(answer, instrument)
            if warning:
                warnings.append(warning)
            if value is None:
                continue
        low, high = ranges.get(code, whole_range)
        if not low <= value <= high:
            warnings.append(
                f"{answer.path} (item {code}): answer outside {low}-{high}; not counted"
            )
            continue
        values[code] = value


def _measured(
    values: Mapping[str, int],
    given: Mapping[str, float],
    warnings: list[str],
    instrument: Instrument,
    status: object,
) -> Measurement:
    """The measurement the items' values and the restated totals make."""
    flags, safety_reasons = safety_flags(values, instrument)

    whole_status = status in COMPLETE_RESPONSE
    scores: list[ScaleScore] = []
    for scale in instrument.scales:
        answered = [values[item] for item in scale.items if item in values]
        if len(answered) == len(scale.items):
            if whole_status:
                score = _scale_score(scale, values, answered)
                if score is not None:
                    scores.append(score)
                    if scale.id in given and given[scale.id] != score.value:
                        warnings.append(
                            f"{instrument.name}: the total item differs from the score of "
                            "the answers; used the answers"
                        )
        elif not answered and scale.id in given and whole_status:
            total = given[scale.id]
            if scale.low <= total <= scale.high:
                warnings.append(f"{scale.name}: no item answers; used the total item")
                scores.append(ScaleScore(scale.id, total, scale.band(total)))
    answered_count = len(values)
    missing = None
    if len(scores) < len(instrument.scales):
        parts = []
        if answered_count < len(instrument.items):
            parts.append(f"{answered_count} of {len(instrument.items)} items answered")
        if not whole_status:
            parts.append(f"status is {status if isinstance(status, str) else 'missing'}")
        missing = "; ".join(parts) or "a scale could not be scored"
        flags.append(Flag.INCOMPLETE)
    # Positional: a class called with keywords packs them into a dict first.
    return Measurement(
        instrument,
        tuple(scores),
        tuple(flags),
        tuple(safety_reasons),
        missing,
        f"{answered_count} of {len(instrument.items)} items",
        tuple(warnings),
    )


def safety_flags(values: Mapping[str, int], instrument: Instrument) -> tuple[list[Flag], list[str]]:
    """The flags the safety items raise (PHQ-9 item 9 above 'not at all'), with reasons."""
    flags: list[Flag] = []
    reasons: list[str] = []
    for item in instrument.safety:
        if values.get(item.item, item.above) > item.above:
            flags.append(Flag(item.flag))
            reasons.append(item.reason)
    return flags, reasons


def positional_answers(answers: Sequence[Answer], instrument: Instrument) -> list[Answer] | None:
    """Answers whose linkIds are the sender's own ("1".."9"), read as the instrument's
    items in order; None when they cannot be (not one answer per item, or some already
    carry item codes)."""
    # Answers already under item codes, the usual case, are found before anything else.
    item_set = instrument.item_set
    if any(a.code in item_set for a in answers):
        return None
    totals = instrument.total_items
    top = [a for a in answers if a.path.count(".item[") == 1 and a.code not in totals]
    # Only a whole set can be read by position: with gaps, which item is which is a guess.
    if len(top) != len(instrument.items):
        return None
    return [
        Answer(a.link_id, item, a.path, a.value)
        for a, item in zip(top, instrument.items, strict=False)
    ]


def member_answers(
    members: Sequence[tuple[str, Mapping[str, Any]]], instrument: Instrument
) -> list[Answer]:
    """Item Observations of a panel (`hasMember`) as answers, by their LOINC code."""
    found: list[Answer] = []
    for member_id, member in members:
        for coded in _codings(member.get("code")):
            if coded.get("code") in instrument.item_set:
                value: dict[str, Any] = dict(member)
                concept = member.get("valueCodeableConcept")
                codings = _codings(concept)
                if codings:
                    value = {"valueCoding": codings[0]}
                elif (number := _number(member)) is not None and number.is_integer():
                    value = {"valueInteger": int(number)}
                found.append(
                    Answer(
                        str(coded["code"]),
                        str(coded["code"]),
                        f"Observation/{member_id}.value",
                        value,
                    )
                )
                break
    return found


def measure_total_observation(
    observation: Mapping[str, Any],
    code: str,
    instrument: Instrument,
    scale: Scale,
    members: Sequence[Answer] = (),
) -> Measurement:
    """Score an Observation that carries one scale's total (e.g. LOINC 44261-6); its item
    Observations (`members`) are read for the safety items."""
    warnings: list[str] = []
    value = _number(observation)
    status = observation.get("status")
    scores: tuple[ScaleScore, ...] = ()
    missing: str | None = None
    flags: tuple[Flag, ...] = ()
    if status not in FINAL_OBSERVATION:
        missing = f"status is {status if isinstance(status, str) else 'missing'}"
        flags = (Flag.INCOMPLETE,)
    elif value is None:
        warnings.append("Observation.value: no integer or quantity value; not scored")
    elif not scale.low <= value <= scale.high:
        warnings.append(f"Observation.value: outside the {scale.name} range {scale.range_text}")
    else:
        scores = (ScaleScore(scale.id, value, scale.band(value)),)
    values: dict[str, int] = {}
    for answer in members:
        item_value, _ = answer_value(answer, instrument)
        if item_value is not None:
            values.setdefault(answer.code, item_value)
    safety, safety_reasons = safety_flags(values, instrument)
    return Measurement(
        instrument,
        scores,
        (*flags, *safety),
        tuple(safety_reasons),
        missing,
        f"Observation {code}",
        tuple(warnings),
    )


def _scale_score(scale: Scale, values: Mapping[str, int], answered: list[int]) -> ScaleScore | None:
    """The scale's score from every item's value (`answered`: them in the scale's order)."""
    rescore = scale.rescore
    item_values = (
        [
            rescore[item].get(values[item], values[item]) if item in rescore else values[item]
            for item in scale.items
        ]
        if rescore
        else answered
    )
    if scale.kind == "profile":
        # EQ-5D style: the levels written side by side ("11223"), no sum and no band.
        return ScaleScore(scale.id, float("".join(str(v) for v in item_values)), None)
    raw = sum(item_values)
    if scale.table:
        reported = scale.table.get(raw)
        if reported is None:
            return None
    else:
        reported = float(raw)
    return ScaleScore(scale.id, reported, scale.band(reported))


def _number(holder: Mapping[str, Any]) -> float | None:
    """valueInteger, valueDecimal or valueQuantity.value as a number."""
    for key in ("valueInteger", "valueDecimal"):
        value = holder.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    quantity = holder.get("valueQuantity")
    if isinstance(quantity, dict):
        value = quantity.get("value")
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def _codings(concept: Any) -> list[dict[str, Any]]:
    codings = concept.get("coding") if isinstance(concept, dict) else None
    return [c for c in codings if isinstance(c, dict)] if isinstance(codings, list) else []
