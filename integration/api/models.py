"""Response shapes, for the OpenAPI document at /docs.

Routes build plain dicts and render them with orjson; these models describe
those dicts so clients can generate code against them.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class SourcePatient(BaseModel):
    source: str
    patient_id: str
    name: str | None
    birth_date: str | None


class PersonSummary(BaseModel):
    id: str = Field(description="Stable person id across sources")
    name: str | None
    birth_date: str | None
    sources: list[SourcePatient]


class PeoplePage(BaseModel):
    items: list[PersonSummary]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page; null at the end"
    )


class Identifier(BaseModel):
    system: str
    value: str
    source: str


class Person(PersonSummary):
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


class JobRecord(BaseModel):
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
    score: int | None
    fulfilment_score: int | None
    warnings: list[str]


class JourneyPage(BaseModel):
    person_id: str
    items: list[JobRecord]
    next_cursor: str | None


class Health(BaseModel):
    status: str
    database: str


class Problem(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    instance: str
