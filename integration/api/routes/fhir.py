"""The FHIR R4 REST write interface providers push to: /fhir.

metadata, transaction and batch Bundles, create (POST, If-None-Exist), update
(PUT, If-Match), read, vread and a small identifier search. Every error is an
OperationOutcome naming the element, entry or header at fault.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import datetime
from email.utils import format_datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Request
from starlette.responses import Response

from integration.api.deps import SettingsDep
from integration.push.bundle import PlannedWrite
from integration.push.capability import capability_statement
from integration.push.outcome import FhirError, Issue, operation_outcome
from integration.push.service import PushService, WriteResult, new_id, with_server_meta
from integration.store.pushed import StoredVersion
from integration.validation import is_fhir_id, is_fhir_type

FHIR_JSON = "application/fhir+json"
ACCEPTED_MEDIA_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")
VERSION = "0.1.0"

router = APIRouter(prefix="/fhir", tags=["fhir"])


class FhirResponse(Response):
    media_type = FHIR_JSON

    def render(self, content: Any) -> bytes:
        return b"" if content is None else orjson.dumps(content)


async def get_push(request: Request) -> PushService:
    push: PushService = request.app.state.push
    return push


async def pushing_source(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> str:
    """The source whose push key the caller presents; 401 otherwise."""
    challenge = {"WWW-Authenticate": 'Bearer realm="fhir-journey push"'}
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise FhirError(
            401, "login", "send a push key as 'Authorization: Bearer <key>'", None, challenge
        )
    keys: dict[str, str] = request.app.state.push_keys
    found = None
    # Compare with every key in constant time: timing tells nothing about the keys.
    for key, source in keys.items():
        if secrets.compare_digest(presented.strip().encode(), key.encode()):
            found = source
    if found is None:
        raise FhirError(401, "login", "the push key is not valid", None, challenge)
    return found


PushDep = Annotated[PushService, Depends(get_push)]
SourceDep = Annotated[str, Depends(pushing_source)]


def _known_type(resource_type: str) -> None:
    if not is_fhir_type(resource_type):
        raise FhirError(404, "not-supported", f"resource type {resource_type!r} is not FHIR R4")


def _fhir_id(resource_type: str, value: str, element: str = "id") -> None:
    """400 for an id outside FHIR's rule, before it reaches the store (where a NUL in
    it would be a PostgreSQL error)."""
    if not is_fhir_id(value):
        raise FhirError(
            400,
            "invalid",
            f"{resource_type}.{element}: not a valid FHIR id (1-64 of A-Z a-z 0-9 - .)",
            f"{resource_type}.{element}",
        )


async def _read_json(request: Request, limit: int) -> Any:
    """The body, parsed; 415 for a non-JSON content type, 413 past `limit` (read no further)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in ACCEPTED_MEDIA_TYPES:
        raise FhirError(
            415,
            "not-supported",
            f"Content-Type must be {FHIR_JSON} (or application/json); got {media[:60] or 'none'}",
        )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise FhirError(413, "too-costly", f"the body is over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise FhirError(413, "too-costly", f"the body is over the {limit}-byte limit")
        chunks.append(chunk)
    try:
        return orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError as exc:
        raise FhirError(400, "structure", f"the body is not valid JSON: {exc}") from None


def _http_date(instant: str) -> str:
    return format_datetime(datetime.fromisoformat(instant), usegmt=True)


def _prefer(request: Request) -> str:
    prefer = request.headers.get("prefer", "")
    for part in prefer.split(";"):
        name, _, value = part.strip().partition("=")
        if name == "return":
            return value.strip('"')
    return "representation"


def _written(request: Request, result: WriteResult) -> FhirResponse:
    headers = {
        "Location": str(request.base_url).rstrip("/") + "/fhir/" + result.location,
        "ETag": result.etag,
        "Last-Modified": _http_date(result.stored.received_at),
    }
    prefer = _prefer(request)
    if prefer == "minimal":
        body = None
    elif prefer == "OperationOutcome" or (result.warnings and prefer != "representation"):
        body = operation_outcome(result.warnings or [Issue("information", "informational", "ok")])
    else:
        body = with_server_meta(result.stored)
    return FhirResponse(body, status_code=result.status, headers=headers)


def _read(stored: StoredVersion) -> FhirResponse:
    return FhirResponse(
        with_server_meta(stored),
        headers={
            "ETag": f'W/"{stored.version_id}"',
            "Last-Modified": _http_date(stored.received_at),
        },
    )


@router.get("/metadata", summary="CapabilityStatement (no key needed)")
def metadata(request: Request) -> FhirResponse:
    base = str(request.base_url).rstrip("/") + "/fhir"
    return FhirResponse(capability_statement(base, VERSION))


@router.post("", summary="A transaction or batch Bundle")
@router.post("/", include_in_schema=False)  # clients differ on the trailing slash
async def bundle(
    request: Request, settings: SettingsDep, push: PushDep, source: SourceDep
) -> FhirResponse:
    body = await _read_json(request, settings.max_push_bytes)
    if not isinstance(body, dict):
        raise FhirError(400, "structure", "the body must be a JSON object (a Bundle)")
    kind, results = await asyncio.to_thread(push.process_bundle, source, body)
    entries: list[dict[str, Any]] = []
    representation = _prefer(request) == "representation"
    for result in results:
        if isinstance(result, FhirError):
            entries.append({"response": {"status": str(result.status), "outcome": result.outcome}})
            continue
        response: dict[str, Any] = {
            "status": result.status_line,
            "location": result.location,
            "etag": result.etag,
            "lastModified": result.stored.received_at,
        }
        if result.warnings:
            response["outcome"] = operation_outcome(result.warnings)
        entry: dict[str, Any] = {"response": response}
        if representation:
            entry["resource"] = with_server_meta(result.stored)
        entries.append(entry)
    return FhirResponse(
        {"resourceType": "Bundle", "id": new_id(), "type": f"{kind}-response", "entry": entries}
    )


@router.post("/{resource_type}", summary="Create, with a server-assigned id")
async def create(
    resource_type: str,
    request: Request,
    settings: SettingsDep,
    push: PushDep,
    source: SourceDep,
    if_none_exist: Annotated[str | None, Header()] = None,
) -> FhirResponse:
    _known_type(resource_type)
    resource = await _read_json(request, settings.max_push_bytes)
    _check_type(resource, resource_type)
    write = PlannedWrite(0, "POST", resource_type, new_id(), resource, None, if_none_exist, None)
    return _written(request, await asyncio.to_thread(push.write_one, source, write))


@router.put("/{resource_type}/{resource_id}", summary="Create or update with the client's id")
async def update(
    resource_type: str,
    resource_id: str,
    request: Request,
    settings: SettingsDep,
    push: PushDep,
    source: SourceDep,
    if_match: Annotated[str | None, Header()] = None,
) -> FhirResponse:
    _known_type(resource_type)
    _fhir_id(resource_type, resource_id)
    resource = await _read_json(request, settings.max_push_bytes)
    _check_type(resource, resource_type)
    if "id" not in resource:
        raise FhirError(
            400, "required", f"{resource_type}.id is required in an update", f"{resource_type}.id"
        )
    if resource["id"] != resource_id:
        raise FhirError(
            400,
            "invalid",
            f"{resource_type}.id in the body differs from the id in the URL",
            f"{resource_type}.id",
        )
    write = PlannedWrite(0, "PUT", resource_type, resource_id, resource, None, None, if_match)
    return _written(request, await asyncio.to_thread(push.write_one, source, write))


@router.get("/{resource_type}/{resource_id}", summary="Read the current version")
async def read(
    resource_type: str, resource_id: str, push: PushDep, source: SourceDep
) -> FhirResponse:
    _known_type(resource_type)
    _fhir_id(resource_type, resource_id)
    return _read(await asyncio.to_thread(push.read, source, resource_type, resource_id))


@router.get("/{resource_type}/{resource_id}/_history/{version_id}", summary="Read one version")
async def vread(
    resource_type: str, resource_id: str, version_id: str, push: PushDep, source: SourceDep
) -> FhirResponse:
    _known_type(resource_type)
    _fhir_id(resource_type, resource_id)
    _fhir_id(resource_type, version_id, "meta.versionId")
    stored = await asyncio.to_thread(push.vread, source, resource_type, resource_id, version_id)
    return _read(stored)


@router.get("/{resource_type}", summary="Search by identifier or _id")
async def search(
    resource_type: str, request: Request, push: PushDep, source: SourceDep
) -> FhirResponse:
    _known_type(resource_type)
    query = request.url.query
    ids = await asyncio.to_thread(push.search_ids, source, resource_type, query)
    found = [await asyncio.to_thread(push.read, source, resource_type, rid) for rid in ids]
    base = str(request.base_url).rstrip("/") + "/fhir"
    return FhirResponse(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(found),
            "link": [{"relation": "self", "url": f"{base}/{resource_type}?{query}"}],
            "entry": [
                {
                    "fullUrl": f"{base}/{resource_type}/{stored.resource_id}",
                    "resource": with_server_meta(stored),
                    "search": {"mode": "match"},
                }
                for stored in found
            ],
        }
    )


def _check_type(resource: Any, resource_type: str) -> None:
    if not isinstance(resource, dict):
        raise FhirError(400, "structure", f"the body must be a JSON object (a {resource_type})")
    if resource.get("resourceType") != resource_type:
        raise FhirError(
            400,
            "invalid",
            f"resourceType in the body is not {resource_type}, the type in the URL",
            "resourceType",
        )
