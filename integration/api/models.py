"""Response and request shapes, for the OpenAPI document at /docs.

Routes build plain dicts and render them with orjson; these models describe
those dicts so clients can generate code against them (tests check every
route's answers against them). The FHIR shapes are loose on purpose: /fhir
takes and returns any R4 resource, so they pin down only what this server
itself writes (resourceType, the Bundle and OperationOutcome it builds).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from integration.store.feed import FeedEventType
from mappings.episodes import EpisodeStatus
from mappings.model import Flag


class LinkedPatient(BaseModel):
    source: str
    patient_id: str
    name: str | None
    birth_date: str | None


class PersonSummary(BaseModel):
    id: str = Field(description="Stable person id across sources")
    name: str | None
    birth_date: str | None
    sources: list[LinkedPatient]


class PeoplePage(BaseModel):
    items: list[PersonSummary]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page; null at the end"
    )


class ReviewSide(BaseModel):
    source: str
    patient_id: str
    person_id: str | None = Field(description="The person this Patient belongs to now")
    name: str | None
    birth_date: str | None


class PossibleMatch(BaseModel):
    a: ReviewSide
    b: ReviewSide
    rule: str = Field(description="What made them a candidate pair, e.g. 'identifier us-ssn'")
    reason: str = Field(description="Why they were not linked automatically")
    fields: dict[str, str] = Field(
        description="Per field, how the two compared: same, differs, missing, a similarity, "
        "or a probabilistic level with its weight"
    )
    score: float | None = Field(description="The probabilistic score, where one was computed")
    decided_at: str


class ReviewPage(BaseModel):
    items: list[PossibleMatch]


class PatientRef(BaseModel):
    source: str = Field(min_length=1, max_length=200)
    patient_id: str = Field(min_length=1, max_length=64)


class PairDecision(BaseModel):
    a: PatientRef
    b: PatientRef
    decision: Literal["match", "no_match"] = Field(
        description="match: one person; no_match: two people, never linked automatically"
    )
    reason: str = Field(min_length=1, max_length=500, description="Kept in the pair's history")


class PairDecided(BaseModel):
    a: str = Field(description="The person of Patient a after the decision")
    b: str = Field(description="The person of Patient b after the decision")


class MergePeople(BaseModel):
    into: str = Field(min_length=1, max_length=36, description="The person to merge into")
    reason: str = Field(min_length=1, max_length=500)


class SplitPatient(PatientRef):
    reason: str = Field(min_length=1, max_length=500)


class PersonAfter(BaseModel):
    person_id: str


class LinkDecision(BaseModel):
    a: PatientRef
    b: PatientRef
    outcome: str = Field(description="match, possible, no_match, or withdrawn")
    rule: str
    reason: str
    decided_by: str = Field(description="automatic, or user:<who> for a reviewer")
    decided_at: str


class LinkHistory(BaseModel):
    items: list[LinkDecision]


class Identifier(BaseModel):
    system: str
    value: str
    source: str


class PersonDetail(PersonSummary):
    identifiers: list[Identifier]
    record_counts: dict[str, int] = Field(description="Job records per job")


class RecordSource(BaseModel):
    source: str
    resource_type: str
    resource_id: str
    version: str


class RecordReason(BaseModel):
    rule_id: str
    pack_version: str
    matched_codes: list[str]
    text: str


class RecordScore(BaseModel):
    scale: str
    value: float
    band: str | None


class JoinedRecord(BaseModel):
    source: str
    resource_type: str
    resource_id: str
    why: str = Field(description="e.g. 'the same day, ambulatory, both placed by rule ...'")


class JourneyItem(BaseModel):
    id: str
    job: str = Field(description="diagnose, treat, keep_well or unclassified")
    occurred_start: str | None
    occurred_end: str | None
    title: str
    setting: str | None
    concern_codes: list[str]
    source: RecordSource
    reason: RecordReason
    instrument: str | None
    instrument_version: str | None
    score: int | None = Field(description="The instrument's first scale, when a whole number")
    band: str | None = Field(description="Severity band of that score (e.g. moderate)")
    scores: list[RecordScore] = Field(description="Every scale the instrument reports")
    fulfilment_score: int | None
    warnings: list[str]
    flags: list[Flag] = Field(
        description="self_harm_risk (a safety item answered above 'not at all': act on it), "
        "incomplete (no score), superseded, upcoming"
    )
    excluded: bool = Field(
        description="Out of the journey (entered in error, cancelled, superseded); "
        "listed only with include_excluded=true, the reason says why"
    )
    joined: list[JoinedRecord] = Field(
        description="The same event as other sources recorded it (a payer's claim of a "
        "provider's visit): shown once, here, with each source and why they are one event"
    )
    event_of: str | None = Field(
        description="Set on a record that restates another source's record of one event "
        "(listed only with include_excluded=true): the id of the record shown"
    )
    deleted_at: str | None = Field(
        None,
        description="A tombstone: when its source deleted the resource (the record is "
        "excluded, kept, and listed only with include_excluded=true)",
    )
    removed_reason: str | None = Field(
        None, description="Why a tombstone left the journey, e.g. 'deleted by source'"
    )


class EpisodeConcernView(BaseModel):
    id: str = Field(
        description="A pack concern (knee_osteoarthritis, depression...), an ICD-10-CM "
        "category (icd10cm:I10), a SNOMED CT concept (sct:...) or general"
    )
    title: str
    chronic: bool = Field(
        description="A long-term concern, coded for this person (screening alone is not)"
    )


class EpisodeStageView(BaseModel):
    job: str
    start: str
    end: str = Field(description="Start of the stage's last record")
    records: list[str]


class EpisodeWait(BaseModel):
    days: int = Field(description="Whole days from the first diagnose to the first treat after it")
    records: list[str] = Field(description="That diagnose record and that treat record")


class PromPoint(BaseModel):
    at: str
    value: float
    record: str


class PromTrajectory(BaseModel):
    instrument: str
    instrument_name: str
    scale: str
    scale_name: str
    better: Literal["lower", "higher"]
    baseline: PromPoint = Field(
        description="The last score at or before the first treat, else the first"
    )
    latest: PromPoint | None = Field(description="The last score after the baseline")
    change: float | None
    percent_change: float | None
    percent_improvement: float | None = Field(
        description="Change in the better direction, percent of the baseline"
    )
    reliable_change_threshold: float | None
    reliable_improvement: bool | None
    reliable_deterioration: bool | None
    caseness: float | None
    recovery: bool | None = Field(
        description="At caseness at baseline and below it at the latest score"
    )
    records: list[str] = Field(description="Every scored record of this scale, in time order")


class FulfilmentSummary(BaseModel):
    mean: float | None
    count: int
    records: list[str]


class EpisodeFulfilment(FulfilmentSummary):
    by_job: dict[str, FulfilmentSummary]


class EpisodeRecordView(BaseModel):
    id: str
    job: str
    start: str | None
    contact: bool = Field(description="Care that happened (not a rating, not upcoming)")
    fulfilment_score: int | None
    why: str = Field(description="Why the record is in this episode")


class JourneyEpisode(BaseModel):
    id: str
    concern: EpisodeConcernView
    status: EpisodeStatus = Field(description="As of the as_of time")
    start: str | None
    end: str | None = Field(description="The last contact, once the episode is closed")
    last_contact: str | None
    last_seen: str | None = Field(
        description="The last contact, else (an episode of ratings only) the last record"
    )
    window_days: int = Field(description="Days without contact that close the episode")
    job_done: bool = Field(description="A PROM of the episode recovered or reliably improved")
    last_stage: str | None
    stages: list[EpisodeStageView]
    wait_days: EpisodeWait | None
    contacts: dict[str, int] = Field(description="Contacts per job")
    sources: list[str]
    service_lines: list[str] = Field(description="Care settings of the contacts")
    outcomes: list[PromTrajectory]
    fulfilment: EpisodeFulfilment
    records: list[EpisodeRecordView]


class EpisodesPage(BaseModel):
    person_id: str
    as_of: str
    items: list[JourneyEpisode]


class OutcomeMeasure(BaseModel):
    id: str
    title: str
    value: float | None
    numerator: float | None
    denominator: int
    unit: str
    definition: str


class OutcomeReport(BaseModel):
    as_of: str
    filters: dict[str, Any]
    episodes: int
    people: int
    episodes_by_status: dict[str, int]
    measures: list[OutcomeMeasure]
    people_pending: int = Field(
        description="People whose episodes are being recomputed after a change: not yet "
        "in these figures"
    )


class JourneyPage(BaseModel):
    person_id: str
    items: list[JourneyItem]
    next_cursor: str | None
    episodes: list[JourneyEpisode] | None = Field(
        default=None, description="With episodes=true: the person's episodes, as of now"
    )


class Health(BaseModel):
    status: str = Field(description="ok, or unavailable (with status code 503)")
    database: str = Field(description="ok or unreachable")


class StoreStatus(BaseModel):
    people: int
    resources_by_type: dict[str, int] = Field(description="Current resources per FHIR type")
    resources_by_source: dict[str, int]
    raw_versions: int = Field(description="Every version ever received")
    records_by_job: dict[str, int]
    pending_derivation: int = Field(description="Resources waiting to be mapped")
    episodes: int = Field(description="Episodes kept for the cohort measures")
    episodes_pending_people: int = Field(
        description="People whose kept episodes wait to be recomputed after a change"
    )
    quarantine_open: int = Field(description="Open quarantine entries of both stages")
    quarantine_open_intake: int = Field(description="Open: input that could not be stored")
    mapping_failures_open: int = Field(
        description="Open: resources stored but whose mapping failed (isolated: each has an "
        "explained unclassified record, or for a Patient no person yet)"
    )
    quarantine_closed_by_operator: int = Field(description="Entries dismissed or resolved by hand")
    last_received_at: str | None
    webhook_subscriptions: int
    webhook_subscriptions_failing: int = Field(
        description="Endpoints whose last delivery failed (see GET /subscriptions)"
    )
    webhook_dead_letters: int = Field(description="Events given up on, over all subscriptions")


class ResourceTypeSync(BaseModel):
    resource_type: str
    checkpoint: str | None
    last_started: str | None
    last_finished: str | None
    last_error: str | None
    last_counts: dict[str, Any] = Field(description="What the last run fetched and stored")


class WorkerUnit(BaseModel):
    unit: str
    lease_owner: str | None
    lease_until: str | None
    next_run_at: str
    failures_in_a_row: int
    last_started: str | None
    last_finished: str | None
    last_error: str | None


class UnfinishedExport(BaseModel):
    """A bulk source's export kicked off and not yet finished: the next sync resumes it."""

    kicked_off_at: str
    since: str | None
    transaction_time: str | None
    files_stored: int


class MemberRoster(BaseModel):
    on_leaving: str = Field(
        description="keep, retire or purge: what happens to the data of a member who leaves"
    )
    members: int = Field(description="On the roster as the last sync read it")
    retired: int = Field(description="Left it, their data retired from the journey")


class SourceState(BaseModel):
    name: str
    kind: str = Field(description="provider or payer")
    base_url: str
    mode: str = Field(description="rest or bulk")
    running_since: str | None = Field(description="Set while a sync started here runs")
    export_in_progress: UnfinishedExport | None
    roster: MemberRoster | None = Field(description="A payer's member roster; null: none")
    worker_units: list[WorkerUnit]
    resource_types: list[ResourceTypeSync]


class SourcesPage(BaseModel):
    items: list[SourceState]


class SyncStarted(BaseModel):
    source: str
    running_since: str
    status_url: str = Field(description="Where to follow it: GET /sources")


class InvalidParam(BaseModel):
    in_: str = Field(alias="in", description="query, path or header")
    name: str
    reason: str


class ProblemDetails(BaseModel):
    """RFC 9457 problem details, as `application/problem+json`."""

    type: str
    title: str
    status: int
    detail: str
    instance: str = Field(description="The request's path")
    invalid_params: list[InvalidParam] | None = Field(
        default=None, description="With 400: each parameter at fault"
    )
    correlation_id: str | None = Field(
        default=None,
        description="With 500: the id of the server log line holding the details "
        "(also in the X-Request-ID header)",
    )


# ---- FHIR (application/fhir+json) ----


class FhirResource(BaseModel):
    """Any FHIR R4 resource."""

    model_config = ConfigDict(extra="allow")

    resourceType: str = Field(pattern=r"^[A-Z][A-Za-z]+$")
    id: str | None = None


class OutcomeIssue(BaseModel):
    model_config = ConfigDict(extra="allow")

    severity: Literal["fatal", "error", "warning", "information"]
    code: str = Field(description="An IssueType code: invalid, structure, not-found, ...")
    diagnostics: str | None = None
    expression: list[str] | None = Field(default=None, description="FHIRPath of the element")


class OperationOutcome(BaseModel):
    """What a FHIR interaction answers with when it fails, or carries warnings."""

    model_config = ConfigDict(extra="allow")

    resourceType: Literal["OperationOutcome"]
    id: str | None = None
    issue: list[OutcomeIssue] = Field(min_length=1)


class EntryResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: str = Field(description="Status code, and for a success its text: '201 Created'")
    location: str | None = None
    etag: str | None = None
    lastModified: str | None = None
    outcome: OperationOutcome | None = None


class BundleEntry(BaseModel):
    model_config = ConfigDict(extra="allow")

    fullUrl: str | None = None
    resource: FhirResource | None = None
    search: dict[str, Any] | None = None
    response: EntryResponse | None = None


class BundleLink(BaseModel):
    relation: str
    url: str


class Bundle(BaseModel):
    """A transaction-response or batch-response (POST /fhir), a searchset, or a
    resource's history (its versions and deletions)."""

    model_config = ConfigDict(extra="allow")

    resourceType: Literal["Bundle"]
    id: str | None = None
    type: Literal["transaction-response", "batch-response", "searchset", "history"]
    total: int | None = None
    link: list[BundleLink] | None = None
    entry: list[BundleEntry]


class CapabilityStatement(BaseModel):
    model_config = ConfigDict(extra="allow")

    resourceType: Literal["CapabilityStatement"]
    status: str
    date: str
    kind: str
    fhirVersion: str
    format: list[str]
    rest: list[dict[str, Any]]


class EntryRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    method: Literal["POST", "PUT"]
    url: str = Field(description="Type for a POST, Type/id for a PUT")
    ifNoneExist: str | None = Field(default=None, description="identifier=system|value")
    ifMatch: str | None = Field(default=None, description='W/"<version>"')


class RequestEntry(BaseModel):
    model_config = ConfigDict(extra="allow")

    fullUrl: str | None = Field(default=None, description="urn:uuid:... that references name")
    resource: FhirResource
    request: EntryRequest


class RequestBundle(BaseModel):
    """What POST /fhir takes: a transaction (all or nothing) or a batch Bundle."""

    model_config = ConfigDict(extra="allow")

    resourceType: Literal["Bundle"]
    type: Literal["transaction", "batch"]
    entry: list[RequestEntry] = []


class FeedEvent(BaseModel):
    id: str = Field(description="Unique and stable: a repeat carries the same id")
    type: FeedEventType
    subject: str = Field(description="The record, person or episode id")
    person_id: str | None
    version: str | None = Field(description="A record's source version")
    time: str
    payload: dict[str, Any] | None = Field(
        default=None, description="With payload=full: the thing's new form (null: removed)"
    )


class FeedPage(BaseModel):
    items: list[FeedEvent]
    next_cursor: str = Field(description="Pass as ?after= next time, also when items is empty")
