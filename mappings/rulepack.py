"""Rule packs: declarative TOML files checked at load and compiled into lookups.

The file format is described in `packs/default.toml`. Loading checks every
key against typed models (an error names the file and the key) and compiles
the codes of each element into a `CodeIndex`, so that mapping a resource is
a handful of dict lookups instead of a scan over rules.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mappings.decisions import EncounterDecisions
from mappings.errors import RulePackError
from mappings.model import Job

DEFAULT_PACK = Path(__file__).parent / "packs" / "default.toml"
ACTCODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CPT = "http://www.ama-assn.org/go/cpt"
# ICD-10 codes arrive with and without the dot ("E11.9", "E119"): compare dotless.
DOTLESS_SYSTEMS = frozenset({"http://hl7.org/fhir/sid/icd-10-cm", "http://hl7.org/fhir/sid/icd-10"})

# Where a rule looks. class/type/serviceType/reasonCode are the Encounter's own (a
# claim's type and lines count as type); condition = the Conditions the encounter
# names or that name it (and a claim's diagnoses); procedure, report, medication and
# immunization = the resources that name the encounter (and a claim's lines).
EncounterElement = Literal[
    "class",
    "type",
    "serviceType",
    "reasonCode",
    "condition",
    "procedure",
    "report",
    "medication",
    "immunization",
]
ENCOUNTER_ELEMENTS: tuple[str, ...] = get_args(EncounterElement)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _PackInfo(_Strict):
    id: str
    version: str
    description: str = ""


class _ValueSet(_Strict):
    title: str
    codes: list[str]


class _EncounterRule(_Strict):
    id: str
    job: Job
    priority: int
    on: list[EncounterElement] = Field(min_length=1)
    codes: list[str] = []
    valueset: str | None = None
    valuesets: list[str] = []
    # Only in these care settings / never in these (see encounter_settings).
    settings: list[str] = []
    not_settings: list[str] = []
    # Only for a concern the patient was known to have before the visit (true), or
    # one first recorded at it (false); unset: either.
    known: bool | None = None
    reason: str


class _Evidence(_Strict):
    # Codes that are no evidence of a job at all (social and administrative findings).
    ignore_valuesets: list[str] = []


class _Pharmacy(_Strict):
    maintenance_refills_at: int = 1
    maintenance_days_supply_at: int = 60
    acute_days_supply_up_to: int = 14


class _ClaimSettings(_Strict):
    # Claim.type code -> care setting; a setting-restricted rule reads it.
    settings: dict[str, str] = {}
    pharmacy: _Pharmacy = _Pharmacy()


class _AnswerList(_Strict):
    title: str
    scores: dict[str, int] = Field(min_length=1)


class _Band(_Strict):
    upto: float
    label: str


class _Scale(_Strict):
    id: str
    name: str
    # Default: every item of the instrument.
    items: list[str] = []
    kind: Literal["sum", "profile"] = "sum"
    # Per item, answer value -> the value the scale adds (reverse-scored items).
    rescore: dict[str, dict[str, int]] = {}
    # Raw sum -> the reported score (T-scores, interval scores).
    table: dict[str, float] = {}
    # LOINC codes under which a source sends this scale's total, as an item or Observation.
    total_codes: list[str] = []
    range: tuple[float, float]
    better: Literal["lower", "higher"]
    positive_at: float | None = None
    reliable_change: float | None = None
    caseness: float | None = None
    bands: list[_Band] = []


class _SafetyItem(_Strict):
    item: str
    above: int
    flag: Literal["self_harm_risk"]
    reason: str


class _Instrument(_Strict):
    id: str
    name: str
    version: str
    purpose: Literal["screen", "outcome", "experience"]
    questionnaires: list[str] = []
    items: list[str] = Field(min_length=1)
    item_range: tuple[int, int]
    # Items whose answers lie on another range than item_range (PROMIS Global07, 0-10).
    item_ranges: dict[str, tuple[int, int]] = {}
    answer_list: str | None = None
    scales: list[_Scale] = Field(min_length=1)
    safety: list[_SafetyItem] = []
    concern: list[str] = []
    # Conditions that make a screen the monitoring of a known concern.
    concern_valueset: str | None = None


class _QuestionnaireRule(_Strict):
    id: str
    job: Job | None = None
    reason: str


class _QuestionnaireRules(_Strict):
    positive_screen: _QuestionnaireRule
    monitoring: _QuestionnaireRule
    negative_screen: _QuestionnaireRule
    incomplete_screen: _QuestionnaireRule
    safety_screen: _QuestionnaireRule
    outcome_measure: _QuestionnaireRule
    experience_rating: _QuestionnaireRule
    fulfilment_survey: _QuestionnaireRule


class _Monitoring(_Strict):
    window_days: int = Field(gt=0)


class _Fulfilment(_Strict):
    questionnaires: list[str]
    score_item: str
    job_item: str
    job_system: str


class _TrustedSystem(_Strict):
    system: str = Field(min_length=1)
    sources: list[str] = Field(default=["*"], min_length=1)


class _Aliases(_Strict):
    names: list[list[str]] = []


class _Probabilistic(_Strict):
    auto_link_probability: float = Field(default=0.999, gt=0, lt=1)
    review_probability: float = Field(default=0.5, gt=0, lt=1)
    min_prior_population: int = Field(default=10_000, ge=1)
    max_block: int = Field(default=500, ge=2)
    weights: dict[str, tuple[float, float]] = {}
    aliases: _Aliases = _Aliases()


class _Identity(_Strict):
    trusted_systems: list[_TrustedSystem] = []
    probabilistic: _Probabilistic = _Probabilistic()
    excluded_values: list[str] = []
    source_trust: list[str] = []
    name_similarity: float = Field(default=0.85, gt=0, le=1)


class _Concern(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str
    # A long-term concern: a year without contact means lost to follow-up, not resolved.
    chronic: bool = False
    # Condition codes (diagnoses, reasons) that are this concern.
    codes: list[str] = []
    valuesets: list[str] = []
    # Its symptoms, work-up and aftercare (knee pain, a knee X-ray, an HbA1c test, a
    # knee replacement): a record with these joins the concern when the person has it
    # coded by a diagnosis somewhere; else they are grouped as if not listed here.
    related: list[str] = []
    instruments: list[str] = []


class _Episodes(_Strict):
    # A gap longer than this between two contacts for a chronic concern (or general
    # care) starts a new episode, and an episode this long without contact is closed.
    close_after_days: int = Field(default=365, gt=0)
    # The same for an acute concern (an illness or injury that is not long-term).
    acute_close_after_days: int = Field(default=90, gt=0)
    # A job-fulfilment survey rates the latest contact of its job this recent.
    fulfilment_within_days: int = Field(default=30, ge=0)
    # Retention: a keep-well contact within this many months of the first treat.
    retention_months: int = Field(default=12, gt=0)
    # Codes of concerns the pack does not list that are chronic all the same.
    chronic_valuesets: list[str] = []
    # Codes that make no concern of their own (check-ups, screening, social findings).
    no_concern_valuesets: list[str] = []


class _PackFile(_Strict):
    pack: _PackInfo
    systems: dict[str, str]
    encounter_settings: dict[str, str] = {}
    valuesets: dict[str, _ValueSet] = {}
    encounter_rules: list[_EncounterRule]
    evidence: _Evidence = _Evidence()
    claims: _ClaimSettings = _ClaimSettings()
    answer_lists: dict[str, _AnswerList] = {}
    instruments: list[_Instrument] = []
    questionnaire_rules: _QuestionnaireRules
    monitoring: _Monitoring
    fulfilment: _Fulfilment
    identity: _Identity = _Identity()
    episodes: _Episodes = _Episodes()
    concerns: list[_Concern] = []


@dataclass(frozen=True, slots=True)
class IdentityRules:
    """Who is one person across sources (the pack's [identity] section)."""

    # Trusted identifier system -> the sources that may assert it (None: any).
    trusted: dict[str, frozenset[str] | None]
    # Normalised values that are not people (placeholders).
    excluded_values: frozenset[str]
    # Sources, most trusted first (survivorship).
    source_trust: tuple[str, ...]
    name_similarity: float
    # Probabilistic matching: thresholds, "field.level" -> (m, u), given-name aliases.
    auto_link_probability: float = 0.999
    review_probability: float = 0.5
    min_prior_population: int = 10_000
    max_block: int = 500
    weights: dict[str, tuple[float, float]] = field(default_factory=dict)
    # Folded given name -> the name of its alias group.
    aliases: dict[str, str] = field(default_factory=dict)

    def links_across_sources(self, source: str, system: str, value: str) -> bool:
        """May this identifier, sent by this source, link its Patient to another
        source's Patients? A trusted system the source may assert, and a value
        that names a person (not a placeholder)."""
        allowed = self.trusted.get(system)
        if allowed is not None and source not in allowed:
            return False
        return self.names_a_person(system, value)

    def names_a_person(self, system: str, value: str) -> bool:
        """A trusted system, and a value that is not a placeholder."""
        if system not in self.trusted:
            return False
        normal = normalise_identifier(value)
        if not normal or normal in self.excluded_values:
            return False
        return not (normal.isdigit() and len(set(normal)) == 1)

    def score_needed(self, probability: float, population: int) -> float:
        """The probabilistic score at which a pair's match probability reaches
        `probability` in a store of `population` Patients."""
        prior = max(population, self.min_prior_population)
        return math.log2(probability / (1 - probability)) + math.log2(prior)

    def trust_rank(self, source: str) -> tuple[int, str]:
        """Sort key of a source for survivorship: listed ones first, in order."""
        if source in self.source_trust:
            return (self.source_trust.index(source), "")
        return (len(self.source_trust), source)


def normalise_identifier(value: str) -> str:
    """An identifier value as compared: no spaces or hyphens, case-folded."""
    return "".join(ch for ch in value if ch not in " -").casefold()


@dataclass(frozen=True, slots=True)
class EncounterRule:
    id: str
    job: Job
    priority: int
    order: int
    reason: str
    settings: frozenset[str] = frozenset()
    not_settings: frozenset[str] = frozenset()
    known: bool | None = None

    def applies(self, setting: str | None, known: bool | None) -> bool:
        if self.settings and setting not in self.settings:
            return False
        if setting in self.not_settings:
            return False
        return self.known is None or self.known is known


@dataclass(frozen=True, slots=True)
class QuestionnaireRule:
    id: str
    job: Job | None
    reason: str


@dataclass(frozen=True, slots=True)
class Band:
    upto: float
    label: str


@dataclass(frozen=True, slots=True)
class Scale:
    """One score of an instrument: which items it adds, how raw sums are reported,
    which direction is better and where its bands and thresholds lie."""

    id: str
    name: str
    items: tuple[str, ...]
    kind: Literal["sum", "profile"]
    rescore: dict[str, dict[int, int]]
    table: dict[int, float]
    total_codes: frozenset[str]
    low: float
    high: float
    better: Literal["lower", "higher"]
    positive_at: float | None
    reliable_change: float | None
    caseness: float | None
    bands: tuple[Band, ...]
    # "0-27": formatted once, not in the reason of every record scored on the scale.
    range_text: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "range_text", f"{self.low:g}-{self.high:g}")

    def band(self, value: float) -> str | None:
        for band in self.bands:
            if value <= band.upto:
                return band.label
        return None


@dataclass(frozen=True, slots=True)
class SafetyItem:
    item: str
    above: int
    flag: Literal["self_harm_risk"]
    reason: str


@dataclass(frozen=True, slots=True)
class Instrument:
    """A questionnaire the pack can score. Items are named by their LOINC code or linkId
    (the last segment of a path-like linkId); a response is complete when every item
    of a scale has an answer with a score in its range (`item_range(item)`: the
    instrument's, or the item's own from `item_ranges`)."""

    id: str
    name: str
    version: str
    purpose: Literal["screen", "outcome", "experience"]
    questionnaires: tuple[str, ...]
    items: tuple[str, ...]
    item_set: frozenset[str]
    low: int
    high: int
    # Item -> (low, high) where an item's range is not the instrument's.
    item_ranges: dict[str, tuple[int, int]]
    # (system, code) -> the answer's value; also (None, code) when that code is unique.
    answer_scores: dict[tuple[str | None, str], int]
    scales: tuple[Scale, ...]
    # Item code under which a response restates a scale's total -> that scale.
    total_items: dict[str, Scale]
    safety: tuple[SafetyItem, ...]
    concern: tuple[str, ...]
    # Matches the codes of a known concern (None: the instrument has none).
    concern_codes: CodeSet | None

    # (low, high), made once: read for every answer scored.
    whole_range: tuple[int, int] = field(init=False)
    # (item, system, code) -> the value of that listed answer to that item, where it lies
    # in the item's range: the common answer scored in one lookup. Not for an item code
    # that is also a total item (such an answer is read as the total).
    item_scores: dict[tuple[str, str, str], int] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "whole_range", (self.low, self.high))
        item_scores: dict[tuple[str, str, str], int] = {}
        for item in self.items:
            if item in self.total_items:
                continue
            low, high = self.item_ranges.get(item, self.whole_range)
            for (system, code), value in self.answer_scores.items():
                if system is not None and low <= value <= high:
                    item_scores[(item, system, code)] = value
        object.__setattr__(self, "item_scores", item_scores)

    def item_range(self, item: str) -> tuple[int, int]:
        """The range an answer to `item` must lie in to count."""
        return self.item_ranges.get(item, self.whole_range)


@dataclass(frozen=True, slots=True)
class Concern:
    """A health problem the pack groups records by, with what relates a record to it."""

    id: str
    title: str
    chronic: bool
    codes: CodeSet
    related: CodeSet
    instruments: frozenset[str]


@dataclass(frozen=True, slots=True)
class EpisodeRules:
    """How records become episodes (the pack's [episodes] and [[concerns]])."""

    concerns: tuple[Concern, ...]
    close_after_days: int
    acute_close_after_days: int
    fulfilment_within_days: int
    retention_months: int
    chronic_codes: CodeSet
    no_concern_codes: CodeSet
    # "system|code" -> what the concerns say of it, filled as met (mappings.episodes).
    token_memo: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class CodeIndex:
    """(system, code) -> rules, plus hierarchical prefixes for codes ending in '*'."""

    exact: dict[tuple[str, str], list[EncounterRule]] = field(default_factory=dict)
    prefixes: dict[str, dict[str, list[EncounterRule]]] = field(default_factory=dict)
    # "system|*": every code of the system.
    any_code: dict[str, list[EncounterRule]] = field(default_factory=dict)

    def add(self, system: str, code: str, rule: EncounterRule) -> None:
        if code == "*":
            self.any_code.setdefault(system, []).append(rule)
        elif code.endswith("*"):
            stem = normalise_code(system, code[:-1])
            self.prefixes.setdefault(system, {}).setdefault(stem, []).append(rule)
        else:
            self.exact.setdefault((system, normalise_code(system, code)), []).append(rule)

    def lookup(self, system: str, code: str) -> Iterator[EncounterRule]:
        code = normalise_code(system, code)
        yield from self.exact.get((system, code), ())
        by_stem = self.prefixes.get(system)
        if by_stem:
            for length in range(len(code), 0, -1):
                yield from by_stem.get(code[:length], ())
        yield from self.any_code.get(system, ())


@dataclass(frozen=True, slots=True)
class CodeSet:
    """Membership in a value set: exact codes and hierarchical prefixes ("I10*")."""

    exact: frozenset[tuple[str, str]]
    prefixes: dict[str, tuple[str, ...]]

    def __contains__(self, token: object) -> bool:
        if not isinstance(token, tuple) or len(token) != 2:
            return False
        system, code = token
        if not isinstance(system, str) or not isinstance(code, str):
            return False
        code = normalise_code(system, code)
        if (system, code) in self.exact:
            return True
        return any(code.startswith(stem) for stem in self.prefixes.get(system, ()))


# Cached: a patient's history repeats its Conditions' codes for every visit placed.
@lru_cache(maxsize=1 << 16)
def normalise_code(system: str, code: str) -> str:
    if system in DOTLESS_SYSTEMS:
        return code.replace(".", "").upper()
    if system == CPT and code[-1:] in ("F", "T"):
        # Category II (performance measures, "2023F") and III (emerging, "0500T") codes
        # are not in the numeric ranges ("cpt|2*" is surgery): keep them apart.
        return f"{code[-1]}:{code}"
    return code


@dataclass(frozen=True, slots=True)
class RulePack:
    """A loaded, compiled rule pack. Build with `load_rule_pack`."""

    id: str
    version: str
    encounter_index: dict[str, CodeIndex]
    encounter_rules: dict[str, EncounterRule]
    encounter_settings: dict[str, str]
    ignored_codes: CodeSet
    # The encounter rules as a memoised decision table over the index above.
    encounter_decisions: EncounterDecisions
    claim_settings: dict[str, str]
    maintenance_refills_at: int
    maintenance_days_supply_at: int
    acute_days_supply_up_to: int
    instruments: tuple[Instrument, ...]
    # Questionnaire canonical URL -> the instrument it names (None: none), filled as met.
    instrument_by_canonical: dict[str, Instrument | None]
    # LOINC code of a scale's total -> (instrument, scale): totals sent as Observations.
    total_codes: dict[str, tuple[Instrument, Scale]]
    questionnaire_rules: dict[str, QuestionnaireRule]
    monitoring_window_days: int
    fulfilment_questionnaires: tuple[str, ...]
    fulfilment_score_item: str
    fulfilment_job_item: str
    fulfilment_job_system: str
    identity: IdentityRules
    episodes: EpisodeRules
    # "id version", as every record names its pack (formatted once, not per record).
    label: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "label", f"{self.id} {self.version}")


def load_rule_pack(path: Path | str = DEFAULT_PACK) -> RulePack:
    """Read, check and compile a rule pack file."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise RulePackError(str(path), "(file)", f"cannot read: {exc.strerror}") from exc
    return parse_rule_pack(text, str(path))


def parse_rule_pack(text: str, file: str) -> RulePack:
    """Check and compile a rule pack's TOML; `file` names where it came from in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulePackError(file, "(syntax)", str(exc)) from exc
    try:
        parsed = _PackFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        raise RulePackError(file, key, first["msg"]) from exc
    return _compile(parsed, file)


def _compile(parsed: _PackFile, file: str) -> RulePack:
    def split(code: str, key: str) -> tuple[str, str]:
        alias, sep, value = code.partition("|")
        if not sep or not value:
            raise RulePackError(file, key, f"code {code!r} is not written 'system|code'")
        system = parsed.systems.get(alias, alias)
        if "/" not in system and ":" not in system:
            raise RulePackError(file, key, f"unknown code system alias {alias!r}")
        return system, value

    index = {element: CodeIndex() for element in ENCOUNTER_ELEMENTS}
    rules_by_id: dict[str, EncounterRule] = {}
    seen_ids: set[str] = set()
    for order, raw in enumerate(parsed.encounter_rules):
        key = f"encounter_rules[{order}]"
        if raw.id in seen_ids:
            raise RulePackError(file, f"{key}.id", f"duplicate rule id {raw.id!r}")
        seen_ids.add(raw.id)
        codes = list(raw.codes)
        named = [("valueset", raw.valueset)] if raw.valueset is not None else []
        named += [("valuesets", name) for name in raw.valuesets]
        for field_name, name in named:
            valueset = parsed.valuesets.get(name)
            if valueset is None:
                raise RulePackError(file, f"{key}.{field_name}", f"no value set {name!r}")
            codes.extend(valueset.codes)
        if not codes:
            raise RulePackError(file, key, "rule has neither codes nor a value set")
        rule = EncounterRule(
            raw.id,
            raw.job,
            raw.priority,
            order,
            raw.reason,
            frozenset(raw.settings),
            frozenset(raw.not_settings),
            raw.known,
        )
        rules_by_id[rule.id] = rule
        for code in codes:
            system, value = split(code, f"{key}.codes")
            for element in raw.on:
                index[element].add(system, value, rule)

    def codes_of(names: list[str], key: str, codes: Sequence[str] = ()) -> CodeSet:
        """The codes of these value sets and of `codes`, as one set."""
        exact: set[tuple[str, str]] = set()
        prefixes: dict[str, list[str]] = {}
        all_codes: list[tuple[str, str]] = [(key, code) for code in codes]
        for name in names:
            valueset = parsed.valuesets.get(name)
            if valueset is None:
                raise RulePackError(file, key, f"no value set {name!r}")
            all_codes.extend((f"valuesets.{name}", code) for code in valueset.codes)
        for where, code in all_codes:
            system, value = split(code, where)
            if value.endswith("*"):
                prefixes.setdefault(system, []).append(normalise_code(system, value[:-1]))
            else:
                exact.add((system, normalise_code(system, value)))
        return CodeSet(frozenset(exact), {k: tuple(v) for k, v in prefixes.items()})

    def code_set(names: str | list[str] | None, key: str) -> CodeSet | None:
        if names is None:
            return None
        return codes_of([names] if isinstance(names, str) else names, key)

    instruments = tuple(
        _compile_instrument(
            raw,
            parsed.answer_lists,
            split,
            file,
            code_set(raw.concern_valueset, f"instruments.{raw.id}.concern_valueset"),
        )
        for raw in parsed.instruments
    )
    ignored = code_set(parsed.evidence.ignore_valuesets, "evidence.ignore_valuesets")
    total_codes: dict[str, tuple[Instrument, Scale]] = {}
    for instrument in instruments:
        for scale in instrument.scales:
            for code in scale.total_codes:
                if code in total_codes:
                    raise RulePackError(
                        file, f"instruments.{instrument.id}", f"total code {code} used twice"
                    )
                total_codes[code] = (instrument, scale)
    rules = parsed.questionnaire_rules
    for name in (
        "positive_screen",
        "monitoring",
        "negative_screen",
        "incomplete_screen",
        "safety_screen",
    ):
        if getattr(rules, name).job is None:
            raise RulePackError(file, f"questionnaire_rules.{name}.job", "a job is required")
    questionnaire_rules = {
        name: QuestionnaireRule(rule.id, rule.job, rule.reason)
        for name, rule in (
            ("positive_screen", rules.positive_screen),
            ("monitoring", rules.monitoring),
            ("negative_screen", rules.negative_screen),
            ("incomplete_screen", rules.incomplete_screen),
            ("safety_screen", rules.safety_screen),
            ("outcome_measure", rules.outcome_measure),
            ("experience_rating", rules.experience_rating),
            ("fulfilment_survey", rules.fulfilment_survey),
        )
    }
    ignored_codes = ignored or CodeSet(frozenset(), {})
    instrument_ids = {instrument.id for instrument in instruments}
    concerns: list[Concern] = []
    for order, raw_concern in enumerate(parsed.concerns):
        key = f"concerns[{order}]"
        unknown = sorted(set(raw_concern.instruments) - instrument_ids)
        if unknown:
            raise RulePackError(file, f"{key}.instruments", f"no instrument {unknown[0]!r}")
        if raw_concern.id in {c.id for c in concerns}:
            raise RulePackError(file, f"{key}.id", f"duplicate concern id {raw_concern.id!r}")
        concerns.append(
            Concern(
                raw_concern.id,
                raw_concern.title,
                raw_concern.chronic,
                codes_of(raw_concern.valuesets, f"{key}.codes", raw_concern.codes),
                codes_of([], f"{key}.related", raw_concern.related),
                frozenset(raw_concern.instruments),
            )
        )
    episodes = parsed.episodes
    return RulePack(
        id=parsed.pack.id,
        version=parsed.pack.version,
        encounter_index=index,
        encounter_rules=rules_by_id,
        encounter_settings=dict(parsed.encounter_settings),
        ignored_codes=ignored_codes,
        encounter_decisions=EncounterDecisions(index, ignored_codes),
        claim_settings=dict(parsed.claims.settings),
        maintenance_refills_at=parsed.claims.pharmacy.maintenance_refills_at,
        maintenance_days_supply_at=parsed.claims.pharmacy.maintenance_days_supply_at,
        acute_days_supply_up_to=parsed.claims.pharmacy.acute_days_supply_up_to,
        instruments=instruments,
        instrument_by_canonical={},
        total_codes=total_codes,
        questionnaire_rules=questionnaire_rules,
        monitoring_window_days=parsed.monitoring.window_days,
        fulfilment_questionnaires=tuple(parsed.fulfilment.questionnaires),
        fulfilment_score_item=parsed.fulfilment.score_item,
        fulfilment_job_item=parsed.fulfilment.job_item,
        fulfilment_job_system=parsed.fulfilment.job_system,
        identity=IdentityRules(
            trusted={
                t.system: None if "*" in t.sources else frozenset(t.sources)
                for t in parsed.identity.trusted_systems
            },
            excluded_values=frozenset(
                normalise_identifier(v) for v in parsed.identity.excluded_values
            ),
            source_trust=tuple(parsed.identity.source_trust),
            name_similarity=parsed.identity.name_similarity,
            **_probabilistic(parsed.identity.probabilistic, file),
        ),
        episodes=EpisodeRules(
            concerns=tuple(concerns),
            close_after_days=episodes.close_after_days,
            acute_close_after_days=episodes.acute_close_after_days,
            fulfilment_within_days=episodes.fulfilment_within_days,
            retention_months=episodes.retention_months,
            chronic_codes=codes_of(episodes.chronic_valuesets, "episodes.chronic_valuesets"),
            no_concern_codes=codes_of(
                episodes.no_concern_valuesets, "episodes.no_concern_valuesets"
            ),
        ),
    )


def _probabilistic(raw: _Probabilistic, file: str) -> dict[str, Any]:
    key = "identity.probabilistic"
    if raw.review_probability > raw.auto_link_probability:
        raise RulePackError(
            file, f"{key}.review_probability", "review_probability is above auto_link_probability"
        )
    for level, (m, u) in raw.weights.items():
        if not (0 < m <= 1 and 0 < u <= 1):
            raise RulePackError(file, f"{key}.weights.{level}", "m and u are in (0, 1]")
    aliases: dict[str, str] = {}
    for group in raw.aliases.names:
        for name in group:
            aliases.setdefault(name.casefold(), group[0].casefold())
    return {
        "auto_link_probability": raw.auto_link_probability,
        "review_probability": raw.review_probability,
        "min_prior_population": raw.min_prior_population,
        "max_block": raw.max_block,
        "weights": dict(raw.weights),
        "aliases": aliases,
    }


def _compile_instrument(
    raw: _Instrument,
    answer_lists: dict[str, _AnswerList],
    split: Callable[[str, str], tuple[str, str]],
    file: str,
    concern_codes: CodeSet | None,
) -> Instrument:
    key = f"instruments.{raw.id}"
    answer_scores: dict[tuple[str | None, str], int] = {}
    if raw.answer_list is not None:
        answer_list = answer_lists.get(raw.answer_list)
        if answer_list is None:
            raise RulePackError(file, f"{key}.answer_list", f"no answer list {raw.answer_list!r}")
        by_code: dict[str, set[int]] = {}
        for token, value in answer_list.scores.items():
            system, code = split(token, f"answer_lists.{raw.answer_list}")
            answer_scores[(system, code)] = value
            by_code.setdefault(code, set()).add(value)
        # A code sent without its system is read only where it cannot mean two things.
        for code, values in by_code.items():
            if len(values) == 1:
                answer_scores[(None, code)] = next(iter(values))
    items = tuple(raw.items)
    ranged = sorted(set(raw.item_ranges) - set(items))
    if ranged:
        raise RulePackError(file, f"{key}.item_ranges", f"not items of {raw.id}: {ranged}")
    for item, (low, high) in raw.item_ranges.items():
        if low > high:
            raise RulePackError(file, f"{key}.item_ranges", f"{item}: low above high")
    scales: list[Scale] = []
    for s in raw.scales:
        scale_key = f"{key}.scales.{s.id}"
        unknown = sorted(set(s.items) - set(items))
        if unknown:
            raise RulePackError(file, f"{scale_key}.items", f"not items of {raw.id}: {unknown}")
        try:
            table = {int(k): v for k, v in s.table.items()}
            rescore = {
                item: {int(k): v for k, v in mapping.items()} for item, mapping in s.rescore.items()
            }
        except ValueError as exc:
            raise RulePackError(file, scale_key, "table and rescore keys are integers") from exc
        uppers = [b.upto for b in s.bands]
        if uppers != sorted(uppers):
            raise RulePackError(file, f"{scale_key}.bands", "bands are listed lowest first")
        scales.append(
            Scale(
                id=s.id,
                name=s.name,
                items=tuple(s.items) or items,
                kind=s.kind,
                rescore=rescore,
                table=table,
                total_codes=frozenset(s.total_codes),
                low=s.range[0],
                high=s.range[1],
                better=s.better,
                positive_at=s.positive_at,
                reliable_change=s.reliable_change,
                caseness=s.caseness,
                bands=tuple(Band(b.upto, b.label) for b in s.bands),
            )
        )
    return Instrument(
        id=raw.id,
        name=raw.name,
        version=raw.version,
        purpose=raw.purpose,
        questionnaires=tuple(raw.questionnaires),
        items=items,
        item_set=frozenset(items),
        low=raw.item_range[0],
        high=raw.item_range[1],
        item_ranges=dict(raw.item_ranges),
        answer_scores=answer_scores,
        scales=tuple(scales),
        total_items={code: scale for scale in scales for code in scale.total_codes},
        safety=tuple(SafetyItem(x.item, x.above, x.flag, x.reason) for x in raw.safety),
        concern=tuple("|".join(split(c, key)) for c in raw.concern),
        concern_codes=concern_codes,
    )
