"""A person's journey as episodes: their records grouped by concern, each episode with
its diagnose -> treat -> keep-well stages, wait, contacts, sources, PROM trajectories
and job-fulfilment answers.

How a record finds its concern, in the pack's terms (`[episodes]`, `[[concerns]]`):
1. its condition codes (diagnoses, reasons): a pack concern whose codes hold them,
   else the code's own ICD-10-CM category (I10.x under I10) or SNOMED CT code;
   codes of `no_concern_valuesets` (check-ups, screening, social findings) make none;
2. a questionnaire: the concern whose instruments include it (an instrument's own
   concern code is no diagnosis: a screen does not establish a concern);
3. a code related to a concern (a symptom, a test, aftercare: knee pain, an HbA1c, a
   knee replacement), for a person who has that concern coded by a diagnosis
   somewhere (an HbA1c of a person without diabetes is screening, not follow-up);
4. a job-fulfilment survey rates the latest contact of the job it names, at most
   `fulfilment_within_days` before it, and joins that contact's episodes;
5. anything else joins the general episode.
A gap of more than the concern's window between two contacts starts a new episode
(`close_after_days` for a chronic concern and general care, `acute_close_after_days`
for an acute one); as long a silence closes it: resolved, or lost to follow-up for a
chronic concern the person has coded whose job was not done (no PROM recovered or
reliably improved).

Pure: the caller reads the records (shown ones only) and says when "now" is.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from mypy_extensions import mypyc_attr

from mappings.decisions import remember
from mappings.model import Flag, Job, ScaleScore
from mappings.rulepack import Concern, EpisodeRules, Instrument, RulePack, Scale

ICD10_SYSTEMS = {
    "http://hl7.org/fhir/sid/icd-10-cm": "ICD-10-CM",
    "http://hl7.org/fhir/sid/icd-10": "ICD-10",
}
SNOMED = "http://snomed.info/sct"
GENERAL = "general"


class EpisodeStatus(StrEnum):
    BEING_DIAGNOSED = "being_diagnosed"
    IN_TREATMENT = "in_treatment"
    KEEPING_WELL = "keeping_well"
    RESOLVED = "resolved"
    LOST_TO_FOLLOW_UP = "lost_to_follow_up"
    # Open, with no record a rule could place: nothing to say about its stage.
    UNCLASSIFIED = "unclassified"


STATUS_OF_STAGE = {
    Job.DIAGNOSE: EpisodeStatus.BEING_DIAGNOSED,
    Job.TREAT: EpisodeStatus.IN_TREATMENT,
    Job.KEEP_WELL: EpisodeStatus.KEEPING_WELL,
}


@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class ShownRecord:
    """One shown record of a person's journey, as episodes read it."""

    id: str
    job: Job
    start: str | None
    source: str
    resource_type: str
    setting: str | None
    concern_codes: tuple[str, ...] = ()
    matched_codes: tuple[str, ...] = ()
    instrument: str | None = None
    scores: tuple[ScaleScore, ...] = ()
    fulfilment_score: int | None = None
    flags: tuple[Flag, ...] = ()
    # Other sources that saw the same event (the record restates theirs).
    also_sources: tuple[str, ...] = ()
    # A job-fulfilment answer: a rating of care, not a contact.
    is_survey: bool = field(init=False)
    # Care that happened (not a rating, not something planned, not undated).
    is_contact: bool = field(init=False)

    def __post_init__(self) -> None:
        survey = self.fulfilment_score is not None and self.instrument is None
        object.__setattr__(self, "is_survey", survey)
        contact = not survey and Flag.UPCOMING not in self.flags and self.start is not None
        object.__setattr__(self, "is_contact", contact)


@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class ConcernRef:
    id: str
    title: str
    # Chronic when the concern is (the pack's `chronic`, or its code in chronic_valuesets).
    chronic: bool


@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class Member:
    item: ShownRecord
    # Why the record is in this episode, in words.
    why: str
    # Joined through a condition code: the concern is established, not only screened for.
    coded: bool = False


@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class Stage:
    job: Job
    start: str
    end: str
    records: tuple[str, ...]


@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class ScorePoint:
    at: str
    value: float
    record: str


@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class Trajectory:
    """One scale of one instrument over an episode: baseline (the last score at or
    before the first treat, else the first), latest (the last score after it)."""

    instrument: str
    instrument_name: str
    scale: str
    scale_name: str
    better: str
    reliable_change: float | None
    caseness: float | None
    points: tuple[ScorePoint, ...]
    baseline: ScorePoint
    latest: ScorePoint | None

    @property
    def change(self) -> float | None:
        return None if self.latest is None else self.latest.value - self.baseline.value

    @property
    def improvement(self) -> float | None:
        """The change in the better direction (positive: better, whatever the scale)."""
        change = self.change
        if change is None:
            return None
        return change if self.better == "higher" else -change

    @property
    def percent_change(self) -> float | None:
        change = self.change
        if change is None or self.baseline.value == 0:
            return None
        return change / abs(self.baseline.value) * 100

    @property
    def percent_improvement(self) -> float | None:
        improvement = self.improvement
        if improvement is None or self.baseline.value == 0:
            return None
        return improvement / abs(self.baseline.value) * 100

    @property
    def reliable_improvement(self) -> bool | None:
        improvement = self.improvement
        if improvement is None or self.reliable_change is None:
            return None
        return improvement >= self.reliable_change

    @property
    def reliable_deterioration(self) -> bool | None:
        improvement = self.improvement
        if improvement is None or self.reliable_change is None:
            return None
        return -improvement >= self.reliable_change

    def is_case(self, value: float) -> bool | None:
        """At or beyond caseness (NHS Talking Therapies: PHQ-9 >= 10, GAD-7 >= 8)."""
        if self.caseness is None:
            return None
        return value >= self.caseness if self.better == "lower" else value <= self.caseness

    @property
    def recovery(self) -> bool | None:
        """A case at baseline and no longer one at the latest score; None when the
        scale has no caseness, there is no later score or the baseline was no case."""
        if self.latest is None or not self.is_case(self.baseline.value):
            return None
        return not self.is_case(self.latest.value)


@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class Episode:
    id: str
    concern: ConcernRef
    members: tuple[Member, ...]
    # Days without contact that close it (the pack's window for its kind of concern).
    window_days: int
    trajectories: tuple[Trajectory, ...] = field(default=())
    contacts: tuple[ShownRecord, ...] = field(init=False)

    def __post_init__(self) -> None:
        contacts = tuple(m.item for m in self.members if m.item.is_contact)
        object.__setattr__(self, "contacts", contacts)

    @property
    def established(self) -> bool:
        """A condition code names the concern: screening alone does not."""
        return self.concern.id == GENERAL or any(m.coded for m in self.members)

    @property
    def chronic(self) -> bool:
        return self.concern.chronic and self.established

    @property
    def start(self) -> str | None:
        times = [m.item.start for m in self.members if m.item.start is not None]
        return min(times) if times else None

    @property
    def last_contact(self) -> str | None:
        # A contact always has a time (`ShownRecord.is_contact`).
        return max((c.start for c in self.contacts if c.start), default=None)

    @property
    def last_seen(self) -> str | None:
        """The last contact; for an episode with none (only ratings), its last record:
        what its window of silence is counted from."""
        times = [m.item.start for m in self.members if m.item.start is not None]
        return self.last_contact or (max(times) if times else None)

    @property
    def stages(self) -> list[Stage]:
        stages: list[Stage] = []
        for item in self.contacts:
            if item.job is Job.UNCLASSIFIED or not item.start:
                continue
            if stages and stages[-1].job is item.job:
                last = stages[-1]
                stages[-1] = Stage(last.job, last.start, item.start, (*last.records, item.id))
            else:
                stages.append(Stage(item.job, item.start, item.start, (item.id,)))
        return stages

    @property
    def wait(self) -> tuple[int, str, str] | None:
        """Whole days from the first diagnose to the first treat after it, with both
        records' ids."""
        contacts = self.contacts
        first_diagnose = next((c for c in contacts if c.job is Job.DIAGNOSE), None)
        if first_diagnose is None or first_diagnose.start is None:
            return None
        for contact in contacts:
            if (
                contact.job is Job.TREAT
                and contact.start is not None
                and contact.start >= first_diagnose.start
            ):
                days = (moment(contact.start) - moment(first_diagnose.start)).days
                return days, first_diagnose.id, contact.id
        return None

    @property
    def job_done(self) -> bool:
        """A PROM of the episode recovered or reliably improved."""
        return any(t.recovery or t.reliable_improvement for t in self.trajectories)

    def status(self, as_of: str) -> EpisodeStatus:
        stages = self.stages
        return episode_status(
            EpisodeFacts(
                self.last_seen,
                stages[-1].job if stages else None,
                self.chronic,
                self.job_done,
                self.window_days,
            ),
            as_of,
        )


@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class EpisodeFacts:
    """What an episode's status depends on besides the moment it is told as of."""

    last_seen: str | None
    last_stage: Job | None
    chronic: bool
    job_done: bool
    window_days: int


def episode_status(facts: EpisodeFacts, as_of: str) -> EpisodeStatus:
    """Closed after `window_days` without contact: a chronic concern is then lost to
    follow-up unless its job got done, anything else resolved. Open: the status of
    its latest stage."""
    last = facts.last_seen
    if last is not None and moment(as_of) - moment(last) > timedelta(days=facts.window_days):
        if facts.chronic and not facts.job_done:
            return EpisodeStatus.LOST_TO_FOLLOW_UP
        return EpisodeStatus.RESOLVED
    if facts.last_stage is None:
        return EpisodeStatus.UNCLASSIFIED
    return STATUS_OF_STAGE.get(facts.last_stage, EpisodeStatus.UNCLASSIFIED)


def build_episodes(person_id: str, items: Iterable[ShownRecord], pack: RulePack) -> list[Episode]:
    """The person's episodes: concerns' in order of their first record, then general care."""
    rules = pack.episodes
    ordered = sorted(items, key=lambda i: (i.start or "", i.id))
    coded = _coded_concerns(ordered, rules)
    buckets: dict[str, tuple[ConcernRef, list[Member]]] = {}
    surveys: list[ShownRecord] = []
    general: list[Member] = []
    for item in ordered:
        if item.is_survey:
            surveys.append(item)
            continue
        found = _concerns_of(item, rules, coded)
        for concern, why, by_diagnosis in found:
            member = Member(item, why, by_diagnosis)
            buckets.setdefault(concern.id, (concern, []))[1].append(member)
        if not found:
            general.append(Member(item, _no_concern_reason(item)))
    episodes = [
        episode
        for concern, members in buckets.values()
        for episode in _split_by_gaps(person_id, concern, members, _window(concern, rules))
    ]
    episodes, unrated = _attach_surveys(episodes, general, surveys, rules.fulfilment_within_days)
    general.extend(unrated)
    general.sort(key=lambda m: (m.item.start or "", m.item.id))
    general_concern = ConcernRef(GENERAL, "General care", chronic=False)
    episodes.sort(key=lambda e: (e.start or "", e.concern.id))
    episodes += _split_by_gaps(person_id, general_concern, general, rules.close_after_days)
    instruments = {instrument.id: instrument for instrument in pack.instruments}
    return [
        Episode(e.id, e.concern, e.members, e.window_days, _trajectories(e, instruments))
        for e in episodes
    ]


def _window(concern: ConcernRef, rules: EpisodeRules) -> int:
    return rules.close_after_days if concern.chronic else rules.acute_close_after_days


def _coded_concerns(items: Sequence[ShownRecord], rules: EpisodeRules) -> set[str]:
    """The pack concerns some record of the person names by a diagnosis code."""
    coded: set[str] = set()
    for item in items:
        if item.instrument is not None or item.is_survey:
            continue
        for token in item.concern_codes:
            coded.update(c.id for c in _token_facts(token, rules).named)
    return coded


@dataclass(frozen=True, slots=True)
class _TokenFacts:
    """What the pack's concerns say of one code, looked up once per pack."""

    named: tuple[Concern, ...]
    related: tuple[Concern, ...]
    no_concern: bool
    category: ConcernRef | None


def _token_facts(token: str, rules: EpisodeRules) -> _TokenFacts:
    memo: dict[str, _TokenFacts] = rules.token_memo
    found = memo.get(token)
    if found is None:
        system, _, code = token.partition("|")
        pair = (system, code)
        found = _TokenFacts(
            tuple(c for c in rules.concerns if pair in c.codes),
            tuple(c for c in rules.concerns if pair in c.related),
            pair in rules.no_concern_codes,
            _category(system, code, pair in rules.chronic_codes),
        )
        remember(memo, token, found)
    return found


def _concerns_of(
    item: ShownRecord, rules: EpisodeRules, coded: set[str]
) -> list[tuple[ConcernRef, str, bool]]:
    """The concerns a record belongs to, each with why and whether a diagnosis code of
    the record names it: by condition code, by its instrument, or by a code related
    to a concern the person has coded (a symptom, a test, aftercare)."""
    found: dict[str, tuple[ConcernRef, str, bool]] = {}
    if item.instrument is not None:
        for concern in rules.concerns:
            if item.instrument in concern.instruments:
                found.setdefault(
                    concern.id, (_ref(concern), f"measured by {item.instrument}", False)
                )
        return list(found.values())
    for token in item.concern_codes:
        facts = _token_facts(token, rules)
        for concern in facts.named:
            found.setdefault(concern.id, (_ref(concern), f"coded {_code_text(token)}", True))
        related = _related(token, facts, coded)
        for concern, why in related:
            found.setdefault(concern.id, (_ref(concern), why, False))
        if facts.named or related or facts.no_concern or facts.category is None:
            continue
        other = facts.category
        found.setdefault(other.id, (other, f"coded {_code_text(token)}", True))
    if not found:
        for token in item.matched_codes:
            for concern, why in _related(token, _token_facts(token, rules), coded):
                found.setdefault(concern.id, (_ref(concern), why, False))
    return list(found.values())


def _related(token: str, facts: _TokenFacts, coded: set[str]) -> list[tuple[Concern, str]]:
    return [
        (concern, f"{_code_text(token)}: related to {concern.title.lower()}, coded elsewhere")
        for concern in facts.related
        if concern.id in coded
    ]


def _category(system: str, code: str, chronic: bool) -> ConcernRef | None:
    """A concern the pack does not list: an ICD-10 code's 3-character category, or a
    SNOMED CT concept as it is (no hierarchy to climb without a terminology server)."""
    if system in ICD10_SYSTEMS and len(code) >= 3:
        category = code[:3].upper()
        prefix = "icd10cm" if system.endswith("icd-10-cm") else "icd10"
        return ConcernRef(f"{prefix}:{category}", f"{ICD10_SYSTEMS[system]} {category}", chronic)
    if system == SNOMED and code:
        return ConcernRef(f"sct:{code}", f"SNOMED CT {code}", chronic)
    return None


def _no_concern_reason(item: ShownRecord) -> str:
    if item.instrument is not None:
        return f"{item.instrument} measures no concern of the pack"
    if item.concern_codes:
        return "its codes are care without a concern of their own (check-up, screening)"
    return "no condition code names a concern"


def _split_by_gaps(
    person_id: str, concern: ConcernRef, members: Sequence[Member], window_days: int
) -> list[Episode]:
    """One concern's records as episodes: a contact more than `window_days` after the
    previous contact starts the next. What is no contact (a rating, something planned,
    a record without a time) never splits: it joins the episode at hand."""
    window = timedelta(days=window_days)
    groups: list[list[Member]] = []
    last: str | None = None
    for member in members:
        item = member.item
        if not groups or (
            item.is_contact
            and item.start is not None
            and last is not None
            and moment(item.start) - moment(last) > window
        ):
            groups.append([])
        groups[-1].append(member)
        if item.is_contact and item.start is not None:
            last = item.start
    return [
        Episode(_episode_id(person_id, concern.id, group), concern, tuple(group), window_days)
        for group in groups
    ]


def _episode_id(person_id: str, concern_id: str, members: Sequence[Member]) -> str:
    # Stable while the episode's first record stays first.
    seed = f"{person_id}|{concern_id}|{members[0].item.id}"
    return hashlib.blake2b(seed.encode(), digest_size=12).hexdigest()


def _attach_surveys(
    episodes: list[Episode],
    general: list[Member],
    surveys: Sequence[ShownRecord],
    within_days: int,
) -> tuple[list[Episode], list[Member]]:
    """Each fulfilment survey joins the episodes of the contact it rates: the latest
    contact of its job at most `within_days` before it. Unrated ones go back."""
    added: dict[str, list[Member]] = {}
    unrated: list[Member] = []
    homes: dict[str, list[str]] = {}
    for episode in episodes:
        for member in episode.members:
            homes.setdefault(member.item.id, []).append(episode.id)
    candidates = [m.item for e in episodes for m in e.members if m.item.is_contact]
    candidates += [m.item for m in general if m.item.is_contact]
    for survey in surveys:
        rated = _rated_contact(survey, candidates, within_days)
        if rated is None:
            why = (
                f"fulfilment survey ({survey.job}) with no {survey.job} contact "
                f"in the {within_days} days before it"
            )
            unrated.append(Member(survey, why))
            continue
        why = f"fulfilment survey rating the {rated.job} contact of {(rated.start or '')[:10]}"
        episode_ids = homes.get(rated.id)
        if not episode_ids:
            unrated.append(Member(survey, why))
            continue
        for episode_id in episode_ids:
            added.setdefault(episode_id, []).append(Member(survey, why))
    result = []
    for episode in episodes:
        extra = added.get(episode.id)
        if extra:
            members = sorted(
                (*episode.members, *extra), key=lambda m: (m.item.start or "", m.item.id)
            )
            episode = Episode(episode.id, episode.concern, tuple(members), episode.window_days)
        result.append(episode)
    return result, unrated


def _rated_contact(
    survey: ShownRecord, contacts: Sequence[ShownRecord], within_days: int
) -> ShownRecord | None:
    if survey.start is None or survey.job is Job.UNCLASSIFIED:
        return None
    answered = moment(survey.start)
    best: ShownRecord | None = None
    for contact in contacts:
        if contact.job is not survey.job or contact.start is None or contact.start > survey.start:
            continue
        if (answered - moment(contact.start)).days > within_days:
            continue
        if best is None or (contact.start or "") > (best.start or ""):
            best = contact
    return best


def _trajectories(
    episode: Episode, instruments: Mapping[str, Instrument]
) -> tuple[Trajectory, ...]:
    first_treat = next(
        (c.start for c in episode.contacts if c.job is Job.TREAT and c.start is not None), None
    )
    points: dict[tuple[str, str], list[ScorePoint]] = {}
    for member in episode.members:
        item = member.item
        if item.instrument is None or item.start is None or Flag.INCOMPLETE in item.flags:
            continue
        for score in item.scores:
            points.setdefault((item.instrument, score.scale), []).append(
                ScorePoint(item.start, score.value, item.id)
            )
    result = []
    for (instrument_id, scale_id), series in points.items():
        instrument = instruments.get(instrument_id)
        scale = _scale(instrument, scale_id)
        if instrument is None or scale is None or scale.kind == "profile":
            continue  # a profile ("11223") is no quantity to follow
        series.sort(key=lambda p: (p.at, p.record))
        before = [
            i for i, p in enumerate(series) if first_treat is not None and p.at <= first_treat
        ]
        base = before[-1] if before else 0
        result.append(
            Trajectory(
                instrument_id,
                instrument.name,
                scale_id,
                scale.name,
                scale.better,
                scale.reliable_change,
                scale.caseness,
                tuple(series),
                series[base],
                series[-1] if base < len(series) - 1 else None,
            )
        )
    return tuple(result)


def _scale(instrument: Instrument | None, scale_id: str) -> Scale | None:
    if instrument is None:
        return None
    return next((s for s in instrument.scales if s.id == scale_id), None)


def _ref(concern: Concern) -> ConcernRef:
    return ConcernRef(concern.id, concern.title, concern.chronic)


def _code_text(token: str) -> str:
    system, _, code = token.partition("|")
    short = ICD10_SYSTEMS.get(system) or {
        SNOMED: "SNOMED CT",
        "http://loinc.org": "LOINC",
        "http://www.ama-assn.org/go/cpt": "CPT",
    }.get(system, system)
    return f"{short} {code}"


def moment(value: str) -> datetime:
    """A stored ISO 8601 time as a datetime."""
    return datetime.fromisoformat(value)


def episode_json(episode: Episode, as_of: str) -> dict[str, Any]:
    """An episode as the API, the CLI and the store show it; the status is as of `as_of`."""
    status = episode.status(as_of)
    closed = status in (EpisodeStatus.RESOLVED, EpisodeStatus.LOST_TO_FOLLOW_UP)
    contacts = episode.contacts
    per_job = Counter(c.job.value for c in contacts)
    wait = episode.wait
    stages = episode.stages
    sources = sorted(
        {c.source for c in (m.item for m in episode.members)}
        | {s for m in episode.members for s in m.item.also_sources}
    )
    return {
        "id": episode.id,
        "concern": {
            "id": episode.concern.id,
            "title": episode.concern.title,
            "chronic": episode.chronic,
        },
        "status": status.value,
        "start": episode.start,
        "end": episode.last_seen if closed else None,
        "last_contact": episode.last_contact,
        "last_seen": episode.last_seen,
        "last_stage": stages[-1].job.value if stages else None,
        "window_days": episode.window_days,
        "job_done": episode.job_done,
        "stages": [
            {"job": s.job.value, "start": s.start, "end": s.end, "records": list(s.records)}
            for s in stages
        ],
        "wait_days": None if wait is None else {"days": wait[0], "records": [wait[1], wait[2]]},
        "contacts": {job.value: per_job[job.value] for job in Job if per_job[job.value]},
        "sources": sources,
        "service_lines": sorted(
            {c.setting for c in contacts if c.setting and c.setting != "questionnaire"}
        ),
        "outcomes": [_trajectory_json(t) for t in episode.trajectories],
        "fulfilment": _fulfilment_json([m.item for m in episode.members if m.item.is_survey]),
        "records": [
            {
                "id": m.item.id,
                "job": m.item.job.value,
                "start": m.item.start,
                "contact": m.item.is_contact,
                "fulfilment_score": m.item.fulfilment_score if m.item.is_survey else None,
                "why": m.why,
            }
            for m in episode.members
        ],
    }


def _trajectory_json(t: Trajectory) -> dict[str, Any]:
    def point(p: ScorePoint | None) -> dict[str, Any] | None:
        return None if p is None else {"at": p.at, "value": p.value, "record": p.record}

    return {
        "instrument": t.instrument,
        "instrument_name": t.instrument_name,
        "scale": t.scale,
        "scale_name": t.scale_name,
        "better": t.better,
        "baseline": point(t.baseline),
        "latest": point(t.latest),
        "change": t.change,
        "percent_change": _rounded(t.percent_change),
        "percent_improvement": _rounded(t.percent_improvement),
        "reliable_change_threshold": t.reliable_change,
        "reliable_improvement": t.reliable_improvement,
        "reliable_deterioration": t.reliable_deterioration,
        "caseness": t.caseness,
        "recovery": t.recovery,
        "records": [p.record for p in t.points],
    }


def _fulfilment_json(surveys: Sequence[ShownRecord]) -> dict[str, Any]:
    by_job: dict[str, list[ShownRecord]] = {}
    for survey in surveys:
        by_job.setdefault(survey.job.value, []).append(survey)

    def summary(items: Sequence[ShownRecord]) -> dict[str, Any]:
        scores = [i.fulfilment_score for i in items if i.fulfilment_score is not None]
        return {
            "mean": _rounded(sum(scores) / len(scores)) if scores else None,
            "count": len(scores),
            "records": [i.id for i in items],
        }

    return {**summary(surveys), "by_job": {job: summary(items) for job, items in by_job.items()}}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
