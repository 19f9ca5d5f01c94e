"""Rule packs: declarative TOML files checked at load and compiled into lookups.

The file format is described in `packs/default.toml`. Loading checks every
key against typed models (an error names the file and the key) and compiles
the codes of each element into a `CodeIndex`, so that mapping a resource is
a handful of dict lookups instead of a scan over rules.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mappings.errors import RulePackError
from mappings.model import Job

DEFAULT_PACK = Path(__file__).parent / "packs" / "default.toml"
ENCOUNTER_ELEMENTS = ("class", "type", "serviceType", "reasonCode", "condition")
ACTCODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
# ICD-10 codes arrive with and without the dot ("E11.9", "E119"): compare dotless.
DOTLESS_SYSTEMS = frozenset({"http://hl7.org/fhir/sid/icd-10-cm", "http://hl7.org/fhir/sid/icd-10"})

EncounterElement = Literal["class", "type", "serviceType", "reasonCode", "condition"]


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
    reason: str


class _Instrument(_Strict):
    id: str
    name: str
    questionnaires: list[str] = Field(min_length=1)
    scored_items: list[str] = Field(min_length=1)
    total_item: str | None = None
    positive_at: int
    max_score: int
    concern: list[str] = []


class _QuestionnaireRule(_Strict):
    id: str
    job: Job | None = None
    reason: str


class _QuestionnaireRules(_Strict):
    positive_screen: _QuestionnaireRule
    monitoring: _QuestionnaireRule
    negative_screen: _QuestionnaireRule
    fulfilment_survey: _QuestionnaireRule


class _Monitoring(_Strict):
    window_days: int = Field(gt=0)


class _Fulfilment(_Strict):
    questionnaires: list[str]
    score_item: str
    job_item: str
    job_system: str


class _PackFile(_Strict):
    pack: _PackInfo
    systems: dict[str, str]
    encounter_settings: dict[str, str] = {}
    valuesets: dict[str, _ValueSet] = {}
    encounter_rules: list[_EncounterRule]
    answer_scores: dict[str, int] = {}
    instruments: list[_Instrument] = []
    questionnaire_rules: _QuestionnaireRules
    monitoring: _Monitoring
    fulfilment: _Fulfilment


@dataclass(frozen=True, slots=True)
class EncounterRule:
    id: str
    job: Job
    priority: int
    order: int
    reason: str


@dataclass(frozen=True, slots=True)
class QuestionnaireRule:
    id: str
    job: Job | None
    reason: str


@dataclass(frozen=True, slots=True)
class Instrument:
    id: str
    name: str
    questionnaires: tuple[str, ...]
    scored_items: frozenset[str]
    total_item: str | None
    positive_at: int
    max_score: int
    concern: tuple[str, ...]


@dataclass(slots=True)
class CodeIndex:
    """(system, code) -> rules, plus hierarchical prefixes for codes ending in '*'."""

    exact: dict[tuple[str, str], list[EncounterRule]] = field(default_factory=dict)
    prefixes: dict[str, dict[str, list[EncounterRule]]] = field(default_factory=dict)

    def add(self, system: str, code: str, rule: EncounterRule) -> None:
        if code.endswith("*"):
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


def normalise_code(system: str, code: str) -> str:
    if system in DOTLESS_SYSTEMS:
        return code.replace(".", "").upper()
    return code


@dataclass(frozen=True, slots=True)
class RulePack:
    """A loaded, compiled rule pack. Build with `load_rule_pack`."""

    id: str
    version: str
    encounter_index: dict[str, CodeIndex]
    encounter_settings: dict[str, str]
    answer_scores: dict[tuple[str, str], int]
    instruments: tuple[Instrument, ...]
    questionnaire_rules: dict[str, QuestionnaireRule]
    monitoring_window_days: int
    fulfilment_questionnaires: tuple[str, ...]
    fulfilment_score_item: str
    fulfilment_job_item: str
    fulfilment_job_system: str

    @property
    def label(self) -> str:
        return f"{self.id} {self.version}"


def load_rule_pack(path: Path | str = DEFAULT_PACK) -> RulePack:
    """Read, check and compile a rule pack file."""
    file = str(path)
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise RulePackError(file, "(file)", f"cannot read: {exc.strerror}") from exc
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
    seen_ids: set[str] = set()
    for order, raw in enumerate(parsed.encounter_rules):
        key = f"encounter_rules[{order}]"
        if raw.id in seen_ids:
            raise RulePackError(file, f"{key}.id", f"duplicate rule id {raw.id!r}")
        seen_ids.add(raw.id)
        codes = list(raw.codes)
        if raw.valueset is not None:
            valueset = parsed.valuesets.get(raw.valueset)
            if valueset is None:
                raise RulePackError(file, f"{key}.valueset", f"no value set {raw.valueset!r}")
            codes.extend(valueset.codes)
        if not codes:
            raise RulePackError(file, key, "rule has neither codes nor a value set")
        rule = EncounterRule(raw.id, raw.job, raw.priority, order, raw.reason)
        for code in codes:
            system, value = split(code, f"{key}.codes")
            for element in raw.on:
                index[element].add(system, value, rule)

    answer_scores = {
        split(code, "answer_scores"): score for code, score in parsed.answer_scores.items()
    }
    instruments = tuple(
        Instrument(
            id=raw.id,
            name=raw.name,
            questionnaires=tuple(raw.questionnaires),
            scored_items=frozenset(raw.scored_items),
            total_item=raw.total_item,
            positive_at=raw.positive_at,
            max_score=raw.max_score,
            concern=tuple("|".join(split(c, f"instruments.{raw.id}")) for c in raw.concern),
        )
        for raw in parsed.instruments
    )
    rules = parsed.questionnaire_rules
    for name in ("positive_screen", "monitoring", "negative_screen"):
        if getattr(rules, name).job is None:
            raise RulePackError(file, f"questionnaire_rules.{name}.job", "a job is required")
    questionnaire_rules = {
        name: QuestionnaireRule(rule.id, rule.job, rule.reason)
        for name, rule in (
            ("positive_screen", rules.positive_screen),
            ("monitoring", rules.monitoring),
            ("negative_screen", rules.negative_screen),
            ("fulfilment_survey", rules.fulfilment_survey),
        )
    }
    return RulePack(
        id=parsed.pack.id,
        version=parsed.pack.version,
        encounter_index=index,
        encounter_settings=dict(parsed.encounter_settings),
        answer_scores=answer_scores,
        instruments=instruments,
        questionnaire_rules=questionnaire_rules,
        monitoring_window_days=parsed.monitoring.window_days,
        fulfilment_questionnaires=tuple(parsed.fulfilment.questionnaires),
        fulfilment_score_item=parsed.fulfilment.score_item,
        fulfilment_job_item=parsed.fulfilment.job_item,
        fulfilment_job_system=parsed.fulfilment.job_system,
    )
