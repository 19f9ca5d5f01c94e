"""Reading a pushed transaction or batch Bundle into the writes it asks for. Pure: no I/O.

Each entry becomes a `PlannedWrite` (POST = create with a server id, PUT =
create-or-update with the client's id), a `PlannedDelete` (DELETE of Type/id, or
of the one resource a Type?search finds) or a `FhirError` naming the entry and
element. References between entries (`urn:uuid:` fullUrls, or the full URL of
a PUT entry) are rewritten to `Type/id` once the final ids are known. Entries
that claim one identity (a fullUrl, or the Type/id a PUT writes) are errors
naming each other (`overlapping`): a reference to them would be ambiguous, and
one write would silently undo the other.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from integration.ingest.validation import is_fhir_id
from integration.push.errors import FhirError

_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
BundleKind = Literal["transaction", "batch"]


@dataclass(slots=True)
class PlannedWrite:
    index: int
    method: Literal["POST", "PUT"]
    resource_type: str
    resource_id: str
    resource: dict[str, Any]
    full_url: str | None
    if_none_exist: str | None
    if_match: str | None


@dataclass(slots=True)
class PlannedDelete:
    index: int
    resource_type: str
    # None for a conditional delete until its search finds the one resource.
    resource_id: str | None
    # The search of a conditional delete (`identifier=system|value`, `_id=...`).
    condition: str | None
    if_match: str | None


Planned = PlannedWrite | PlannedDelete


def bundle_kind(bundle: dict[str, Any]) -> BundleKind:
    if bundle.get("resourceType") != "Bundle":
        raise FhirError(
            400, "invalid", "POST /fhir takes a Bundle of type transaction or batch", "resourceType"
        )
    kind = bundle.get("type")
    if kind not in ("transaction", "batch"):
        raise FhirError(
            400,
            "invalid",
            "POST /fhir takes a Bundle of type transaction or batch; this one is not",
            "Bundle.type",
        )
    return "transaction" if kind == "transaction" else "batch"


def plan_entries(bundle: dict[str, Any], new_id: Callable[[], str]) -> list[Planned | FhirError]:
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise FhirError(400, "structure", "Bundle.entry must be a list", "Bundle.entry")
    planned: list[Planned | FhirError] = []
    for index, entry in enumerate(entries):
        try:
            planned.append(_plan_entry(index, entry, new_id))
        except FhirError as error:
            planned.append(error)
    return planned


def _plan_entry(index: int, entry: Any, new_id: Callable[[], str]) -> Planned:
    where = f"Bundle.entry[{index}]"
    if not isinstance(entry, dict):
        raise FhirError(400, "structure", f"{where} is not an object", where)
    request = entry.get("request")
    if not isinstance(request, dict):
        raise FhirError(400, "required", f"{where}.request is missing", f"{where}.request")
    method, url = request.get("method"), request.get("url")
    if method not in ("POST", "PUT", "DELETE"):
        raise FhirError(
            400,
            "not-supported",
            f"{where}.request.method: only POST, PUT and DELETE are supported in a Bundle",
            f"{where}.request.method",
        )
    if not isinstance(url, str) or not url:
        raise FhirError(400, "required", f"{where}.request.url is missing", f"{where}.request.url")
    if method == "DELETE":
        return _plan_delete(index, request, url)
    resource = entry.get("resource")
    if not isinstance(resource, dict):
        raise FhirError(400, "required", f"{where}.resource is missing", f"{where}.resource")
    path, _, query = url.partition("?")
    parts = path.strip("/").split("/")
    url_type = parts[0]
    if not _TYPE.match(url_type):
        raise FhirError(400, "invalid", f"{where}.request.url does not name a resource type", where)
    if resource.get("resourceType") != url_type:
        raise FhirError(
            400,
            "invalid",
            f"{where}.resource.resourceType does not match {where}.request.url",
            f"{where}.resource.resourceType",
        )
    full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
    if method == "POST":
        if len(parts) != 1 or query:
            raise FhirError(
                400, "invalid", f"{where}.request.url: a POST names only the type", where
            )
        if_none_exist = request.get("ifNoneExist")
        if isinstance(if_none_exist, str) and "\x00" in if_none_exist:
            # No identifier held has one, and PostgreSQL cannot search for it.
            raise FhirError(
                400,
                "invalid",
                f"{where}.request.ifNoneExist holds U+0000",
                f"{where}.request.ifNoneExist",
            )
        return PlannedWrite(
            index,
            "POST",
            url_type,
            new_id(),
            resource,
            full_url,
            if_none_exist if isinstance(if_none_exist, str) else None,
            None,
        )
    if query or len(parts) != 2:
        raise FhirError(
            400,
            "not-supported",
            f"{where}.request.url: PUT takes Type/id (conditional update is not supported)",
            f"{where}.request.url",
        )
    resource_id = parts[1]
    if not is_fhir_id(resource_id):
        raise FhirError(
            400, "invalid", f"{where}.request.url: not a valid FHIR id", f"{where}.request.url"
        )
    if "id" in resource and resource["id"] != resource_id:
        raise FhirError(
            400,
            "invalid",
            f"{where}.resource.id differs from the id in {where}.request.url",
            f"{where}.resource.id",
        )
    if_match = request.get("ifMatch")
    return PlannedWrite(
        index,
        "PUT",
        url_type,
        resource_id,
        resource,
        full_url,
        None,
        if_match if isinstance(if_match, str) else None,
    )


def _plan_delete(index: int, request: dict[str, Any], url: str) -> PlannedDelete:
    """DELETE Type/id, or Type?search (a conditional delete: the one resource it finds)."""
    where = f"Bundle.entry[{index}].request.url"
    path, _, query = url.partition("?")
    parts = path.strip("/").split("/")
    if not _TYPE.match(parts[0]) or len(parts) > 2 or (len(parts) == 2) == bool(query):
        raise FhirError(400, "invalid", f"{where}: a DELETE takes Type/id or Type?search", where)
    if "\x00" in url:
        raise FhirError(400, "invalid", f"{where} holds U+0000", where)
    if len(parts) == 2 and not is_fhir_id(parts[1]):
        raise FhirError(400, "invalid", f"{where}: not a valid FHIR id", where)
    if_match = request.get("ifMatch")
    return PlannedDelete(
        index,
        parts[0],
        parts[1] if len(parts) == 2 else None,
        query or None,
        if_match if isinstance(if_match, str) else None,
    )


def overlapping(kind: BundleKind, planned: list[Planned | FhirError]) -> list[Planned | FhirError]:
    """`planned` with every entry that shares a fullUrl, or the Type/id a PUT or DELETE
    names, with another replaced by an error naming all of them (FHIR: overlapping
    identities fail a transaction; a batch's entries must not depend on each other, so
    there each one involved fails, whatever the order, and the rest go on)."""
    claims: dict[tuple[str, str], list[tuple[int, Planned]]] = defaultdict(list)
    for position, item in enumerate(planned):
        if isinstance(item, PlannedDelete):
            if item.resource_id is not None:
                name = f"{item.resource_type}/{item.resource_id}"
                claims[("resource", name)].append((position, item))
            continue
        if not isinstance(item, PlannedWrite):
            continue
        if item.full_url:
            claims[("fullUrl", item.full_url)].append((position, item))
        if item.method == "PUT":
            name = f"{item.resource_type}/{item.resource_id}"
            claims[("resource", name)].append((position, item))
    checked = list(planned)
    for (claim, name), writes in claims.items():
        if len(writes) < 2:
            continue
        entries = [f"Bundle.entry[{write.index}]" for _, write in writes]
        together = ", ".join(entries[:-1]) + f" and {entries[-1]}"
        for position, write in writes:
            if isinstance(checked[position], FhirError):
                continue  # already named by another overlap
            if claim == "fullUrl":
                checked[position] = FhirError(
                    400,
                    "invariant",
                    f"{together} have the same fullUrl; a Bundle's fullUrls must be unique, "
                    "or a reference to one would be ambiguous",
                    f"Bundle.entry[{write.index}].fullUrl",
                )
            else:
                checked[position] = FhirError(
                    400,
                    "duplicate",
                    f"{together} all write {name}; a {kind} may write (or delete) a "
                    "resource only once",
                    f"Bundle.entry[{write.index}].request.url",
                )
    return checked


def references(value: Any) -> Iterator[dict[str, Any]]:
    """Every Reference-shaped object (a dict with a string `reference`) inside `value`."""
    if isinstance(value, dict):
        if isinstance(value.get("reference"), str):
            yield value
        for item in value.values():
            yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def full_url_targets(writes: list[PlannedWrite]) -> dict[str, str]:
    """fullUrl -> `Type/id` for every entry that other entries may point at."""
    targets: dict[str, str] = {}
    for write in writes:
        if write.full_url:
            targets[write.full_url] = f"{write.resource_type}/{write.resource_id}"
    return targets


def resolve_references(write: PlannedWrite, targets: dict[str, str]) -> None:
    """Point references at the entries' final ids; a urn:uuid that names no entry is an error."""
    for reference in references(write.resource):
        value = reference["reference"]
        if value in targets:
            reference["reference"] = targets[value]
        elif value.startswith(("urn:uuid:", "urn:oid:")):
            raise FhirError(
                400,
                "invalid",
                f"Bundle.entry[{write.index}].resource: a reference names a {value[:8]} "
                "fullUrl that no entry of this Bundle has",
                f"Bundle.entry[{write.index}].resource",
            )


def with_references_resolved(resource: dict[str, Any], targets: dict[str, str]) -> dict[str, Any]:
    """A copy of `resource` with references to entries pointed at their ids (no checks)."""

    def copy(value: Any) -> Any:
        if isinstance(value, dict):
            out = {key: copy(item) for key, item in value.items()}
            reference = out.get("reference")
            if isinstance(reference, str) and reference in targets:
                out["reference"] = targets[reference]
            return out
        if isinstance(value, list):
            return [copy(item) for item in value]
        return value

    copied: dict[str, Any] = copy(resource)
    return copied
