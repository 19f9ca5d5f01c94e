"""What the store needs to know about one parsed resource, worked out without I/O.

`intake` validates a resource (fully, or only its identity for a trusted
source) and reads the keys the raw zone files it under: id, version key,
meta.lastUpdated and the Patient it belongs to. It is pure, so the pipeline
can run it in its own process or in worker processes (`integration.ingest.pool`)
and get the same answer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from integration.derived_types import subject_elements
from integration.ingest.validation import check_identity, validate_resource
from integration.limits import DEFAULT_MAX_DEPTH
from integration.store.raw import version_key
from mappings.dates import parse_interval
from mappings.errors import FhirDateError
from mappings.fhir_values import reference_id

# Types whose `subject` is the Patient a record belongs to.
SUBJECT_ELEMENTS = subject_elements()


@dataclass(frozen=True, slots=True)
class Intake:
    """A resource fit to store, and the keys it is stored under."""

    resource_type: str
    resource_id: str
    version_key: str
    last_updated: str | None
    subject_id: str | None
    warnings: tuple[str, ...]


def intake(
    resource: dict[str, Any],
    fallback_id: str | None,
    validate: bool,
    max_depth: int = DEFAULT_MAX_DEPTH,
    raw: bytes | None = None,
) -> Intake:
    """Raises `integration.ingest.errors.ResourceRejected` naming the first bad element.
    Both checks start with the resource's depth (at most `max_depth`), before
    anything recursive, the content hashes here included, sees it. `raw` is the
    JSON the resource was parsed from, when there is one: it makes that check cheap."""
    check = validate_resource if validate else check_identity
    validated = check(resource, max_depth, raw)
    warnings = validated.warnings
    raw_id = resource.get("id")
    resource_id = raw_id if isinstance(raw_id, str) else fallback_id
    if resource_id is None:
        digest = hashlib.sha256(orjson.dumps(resource, option=orjson.OPT_SORT_KEYS))
        resource_id = "h-" + digest.hexdigest()[:32]
        warnings += (f"{validated.resource_type}.id: missing; stored under a content-hash id",)
    return Intake(
        resource_type=validated.resource_type,
        resource_id=resource_id,
        version_key=version_key(resource),
        last_updated=last_updated_of(resource),
        subject_id=subject_id_of(validated.resource_type, resource, resource_id),
        warnings=warnings,
    )


def last_updated_of(resource: dict[str, Any]) -> str | None:
    """meta.lastUpdated as ISO UTC to the second, or None when absent or unreadable."""
    meta = resource.get("meta")
    value = meta.get("lastUpdated") if isinstance(meta, dict) else None
    if not isinstance(value, str):
        return None
    try:
        return parse_interval(value, "meta.lastUpdated").start_iso
    except FhirDateError:
        return None


def subject_id_of(resource_type: str, resource: dict[str, Any], resource_id: str) -> str | None:
    """The id of the Patient a resource belongs to (a Patient belongs to itself)."""
    if resource_type == "Patient":
        return resource_id
    element = SUBJECT_ELEMENTS.get(resource_type)
    if element is not None:
        return reference_id(resource.get(element), "Patient")
    return None
