"""Checking that a parsed resource is valid FHIR R4 before it enters the raw zone.

Validation uses fhir.resources' R4B models (Patient, Encounter and
QuestionnaireResponse are the same in R4 and R4B). Two real-world
deviations are accepted with a warning instead of a rejection:
- a dateTime without a timezone ("2025-01-28T00:00:00"): R4 forbids it, real
  servers send it; it is read as UTC;
- partial dates ("2025-01") are valid FHIR already and pass as they are.
An R5-shaped Encounter is rejected with an error that says so, rather than
with the confusing errors R4 validation would give it.

Before any of that, `check_structure` bounds how deeply a resource nests and
refuses NUL characters, walking it without recursion: what comes after
(validation, content hashes, the store) recurses or cannot hold a NUL.

Messages name FHIR paths, never values.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from integration.ingest.errors import ResourceRejected
from integration.limits import DEFAULT_MAX_DEPTH

_NAIVE_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")
_RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
# A path longer than this many steps is shortened in messages (its middle elided).
_PATH_STEPS_SHOWN = 12
_CONTAINERS = (dict, list)
# Where a container sits: (its parent's link, its key there); None for the resource.
_Link = tuple[Any, int | str] | None
# fhir.resources checks types and cardinality but not required code bindings;
# these are the ones mapping depends on.
REQUIRED_CODES: dict[tuple[str, str], tuple[str, frozenset[str]]] = {
    ("Encounter", "status"): (
        "EncounterStatus",
        frozenset(
            {
                "planned",
                "arrived",
                "triaged",
                "in-progress",
                "onleave",
                "finished",
                "cancelled",
                "entered-in-error",
                "unknown",
            }
        ),
    ),
    ("QuestionnaireResponse", "status"): (
        "QuestionnaireResponseStatus",
        frozenset({"in-progress", "completed", "amended", "entered-in-error", "stopped"}),
    ),
    ("Patient", "gender"): (
        "AdministrativeGender",
        frozenset({"male", "female", "other", "unknown"}),
    ),
}


@dataclass(frozen=True, slots=True)
class Validated:
    resource_type: str
    warnings: tuple[str, ...]


@lru_cache(maxsize=256)
def _model(resource_type: str) -> Any:
    try:
        return get_fhir_model_class(resource_type)
    except (KeyError, ValueError, AttributeError, ImportError):
        return None


def is_fhir_type(name: str) -> bool:
    """Is `name` a FHIR R4 resource type fhir-journey can validate?"""
    return bool(_RESOURCE_TYPE.match(name)) and _model(name) is not None


def is_fhir_id(value: str) -> bool:
    """Does `value` follow FHIR's id rule: [A-Za-z0-9-.]{1,64}?"""
    return bool(_ID.fullmatch(value))


def fhir_path(resource_type: str, loc: Sequence[int | str]) -> str:
    """`Patient` + ('identifier', 0, 'system') -> `Patient.identifier[0].system`."""
    path = resource_type
    for part in loc:
        if part == "root":
            continue
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def check_structure(
    resource: dict[str, Any], max_depth: int = DEFAULT_MAX_DEPTH, raw: bytes | None = None
) -> None:
    """Raise `ResourceRejected` for objects and arrays nested deeper than `max_depth`
    (the resource itself is level 1) or a NUL character in any element name or string.

    Iterative, so a resource nested ten thousand deep costs a loop, not the stack;
    run it before anything that recurses. NUL: FHIR strings should not hold control
    characters, and PostgreSQL text cannot (ids, identifiers and names become keys).
    `raw`, the JSON the resource was parsed from, lets most resources skip the walk."""
    if raw is not None and _plainly_fine(raw, max_depth):
        return
    stack: list[tuple[Any, int, _Link]] = [(resource, 1, None)]
    while stack:
        value, depth, link = stack.pop()
        if depth > max_depth:
            raise ResourceRejected(
                _link_path(resource, link),
                f"nested deeper than {max_depth} levels of objects and arrays "
                "(JOURNEY_MAX_RESOURCE_DEPTH); not read further",
            )
        pairs = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in pairs:
            if isinstance(key, str) and "\x00" in key:
                raise ResourceRejected(
                    _link_path(resource, link), "an element name contains a NUL character (U+0000)"
                )
            if isinstance(item, _CONTAINERS):
                stack.append((item, depth + 1, (link, key)))
            elif isinstance(item, str) and "\x00" in item:
                raise ResourceRejected(
                    _link_path(resource, (link, key)),
                    "contains a NUL character (U+0000): FHIR strings should hold no control "
                    "characters, and the store cannot keep this one",
                )


def _plainly_fine(raw: bytes, max_depth: int) -> bool:
    """No deeper than the number of objects and arrays in it (brackets in strings only
    add to the count), and JSON can only carry a NUL as the escape \\u0000: two scans
    at C speed instead of a walk in Python, a few times faster for usual resources."""
    return raw.count(b"{") + raw.count(b"[") <= max_depth and b"\\u0000" not in raw


def _link_path(resource: dict[str, Any], link: _Link) -> str:
    steps: list[int | str] = []
    while link is not None:
        link, key = link
        steps.append(key)
    steps.reverse()
    resource_type = resource.get("resourceType")
    root = (
        resource_type
        if isinstance(resource_type, str) and _RESOURCE_TYPE.match(resource_type)
        else "(resource)"
    )
    if len(steps) <= _PATH_STEPS_SHOWN:
        return fhir_path(root, steps)
    head = fhir_path(root, steps[: _PATH_STEPS_SHOWN - 2])
    return head + f"...({len(steps) - _PATH_STEPS_SHOWN} more)" + fhir_path("", steps[-2:])


def validate_resource(
    resource: dict[str, Any], max_depth: int = DEFAULT_MAX_DEPTH, raw: bytes | None = None
) -> Validated:
    """Validate against R4; raise `ResourceRejected` naming the first bad element.
    `raw` is the JSON the resource was read from, if at hand (see `check_structure`)."""
    resource_type, model = _identity(resource, max_depth, raw)
    if resource_type == "Encounter":
        _reject_r5_encounter(resource)
    try:
        model.model_validate(resource)
        validated = Validated(resource_type, ())
    except ValidationError as exc:
        validated = _accept_naive_date_times(resource, resource_type, model, exc)
    _check_required_codes(resource, resource_type)
    return validated


def check_identity(
    resource: dict[str, Any], max_depth: int = DEFAULT_MAX_DEPTH, raw: bytes | None = None
) -> Validated:
    """Only what storing needs (a known resourceType, a valid id, a bounded depth, no
    NUL): for sources configured as trusted, whose resources skip full validation."""
    resource_type, _model_class = _identity(resource, max_depth, raw)
    return Validated(resource_type, ())


def _identity(resource: dict[str, Any], max_depth: int, raw: bytes | None) -> tuple[str, Any]:
    resource_type = resource.get("resourceType")
    if resource_type is None:
        raise ResourceRejected("resourceType", "missing resourceType")
    if not isinstance(resource_type, str) or not _RESOURCE_TYPE.match(resource_type):
        raise ResourceRejected("resourceType", "resourceType is not a FHIR type name")
    model = _model(resource_type)
    if model is None:
        raise ResourceRejected("resourceType", f"unknown resourceType {resource_type!r} in FHIR R4")
    resource_id = resource.get("id")
    if resource_id is not None and not (isinstance(resource_id, str) and is_fhir_id(resource_id)):
        raise ResourceRejected(f"{resource_type}.id", "id is not a valid FHIR id")
    check_structure(resource, max_depth, raw)
    return resource_type, model


def _check_required_codes(resource: dict[str, Any], resource_type: str) -> None:
    for (of_type, element), (value_set, codes) in REQUIRED_CODES.items():
        if of_type == resource_type and element in resource and resource[element] not in codes:
            raise ResourceRejected(
                f"{resource_type}.{element}", f"code is not in the required value set {value_set}"
            )


def _reject_r5_encounter(resource: dict[str, Any]) -> None:
    r5_markers: list[str] = [
        key for key in ("actualPeriod", "plannedStartDate", "plannedEndDate") if key in resource
    ]
    if isinstance(resource.get("class"), list):
        r5_markers.insert(0, "class as a list")
    if r5_markers:
        raise ResourceRejected(
            "Encounter.class" if "class as a list" in r5_markers else f"Encounter.{r5_markers[0]}",
            f"this is an R5 Encounter ({', '.join(r5_markers)}); fhir-journey reads FHIR R4 "
            "(4.0.1): send Encounter.class as one Coding and Encounter.period",
        )


def _accept_naive_date_times(
    resource: dict[str, Any], resource_type: str, model: Any, exc: ValidationError
) -> Validated:
    errors = exc.errors()
    naive_paths: list[tuple[int | str, ...]] = []
    for error in errors:
        loc = tuple(part for part in error["loc"] if part != "root")
        value = _value_at(resource, loc)
        if isinstance(value, str) and _NAIVE_DATE_TIME.match(value):
            naive_paths.append(loc)
        else:
            raise _rejection(resource_type, error, len(errors)) from None
    patched = copy.deepcopy(resource)
    for loc in naive_paths:
        _set_at(patched, loc, _value_at(patched, loc) + "Z")
    try:
        model.model_validate(patched)
    except ValidationError as again:
        raise _rejection(resource_type, again.errors()[0], len(again.errors())) from None
    return Validated(
        resource_type,
        tuple(
            f"{fhir_path(resource_type, loc)}: dateTime without timezone, read as UTC"
            for loc in naive_paths
        ),
    )


def _rejection(resource_type: str, error: Any, count: int) -> ResourceRejected:
    path = fhir_path(resource_type, error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    value = error.get("input")
    if isinstance(value, str) and len(value) > 2 and value in message:
        message = message.replace(value, "<value>")  # never echo data
    if error["type"] == "extra_forbidden":
        message = "element not defined in FHIR R4"
    more = f" (and {count - 1} more problem{'s' if count > 2 else ''})" if count > 1 else ""
    return ResourceRejected(path, message + more)


def _value_at(resource: Any, loc: Sequence[int | str]) -> Any:
    value = resource
    for part in loc:
        if isinstance(part, int) and isinstance(value, list) and part < len(value):
            value = value[part]
        elif isinstance(part, str) and isinstance(value, dict):
            value = value.get(part)
        else:
            return None
    return value


def _set_at(resource: Any, loc: Sequence[int | str], new: Any) -> None:
    target = _value_at(resource, loc[:-1])
    target[loc[-1]] = new
