"""The FHIR R4 REST write interface providers push to: /fhir.

metadata, transaction and batch Bundles, create (POST, If-None-Exist), update
(PUT, If-Match), delete (also conditional, If-Match), read, vread, a resource's
history and a small identifier search. Every error is an OperationOutcome naming
the element, entry or header at fault.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from integration.access.authenticator import Authenticator
from integration.access.oauth import IssuerKeysUnavailable, TokenRejected
from integration.access.principal import Principal
from integration.access.scopes import Permission
from integration.access.visibility import readable, visible_person
from integration.api.deps import (
    WITHOUT_NUL,
    ReadStoreDep,
    SettingsDep,
    admit,
    lacking,
    past_rate,
)
from integration.api.models import (
    Bundle,
    CapabilityStatement,
    FhirResource,
    OperationOutcome,
    RequestBundle,
)
from integration.api.openapi import fhir_request_body
from integration.api.responses import FhirResponse
from integration.clock import utc_now
from integration.ingest.validation import is_fhir_id, is_fhir_type
from integration.journey.episode_of_care import episode_of_care
from integration.journey.episodes import episodes_of_person
from integration.journey.patient_match import Candidate, match_patient
from integration.journey.rule_packs import store_pack
from integration.push.bundle import PlannedDelete, PlannedWrite
from integration.push.capability import capability_statement
from integration.push.errors import FhirError
from integration.push.outcome import Issue, operation_outcome
from integration.push.service import (
    DeleteResult,
    PushService,
    WriteResult,
    new_id,
    with_server_meta,
)
from integration.store.pushed import StoredVersion
from integration.store.schema import person_links

FHIR_JSON = "application/fhir+json"
MAPPING_LAGS_HEADER = "X-Journey-Mapping"
FHIR_ID = r"^[A-Za-z0-9\-.]{1,64}$"
ACCEPTED_MEDIA_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")
VERSION = "0.1.0"

router = APIRouter(prefix="/fhir", tags=["fhir"], default_response_class=FhirResponse)
_push_key = HTTPBearer(
    auto_error=False,
    scheme_name="PushKey",
    description="A push key from [[push_clients]]: it names the source the pushes are stored under",
)

# Why each error status happens, for the OpenAPI document.
_ERRORS = {
    400: "Malformed JSON, a body that is not what the URL names, an id differing from the "
    "URL's, a Bundle entry that cannot be carried out, an invalid or unsupported parameter",
    404: "A resource type FHIR R4 does not have, or nothing held with that id or version",
    412: "If-Match names another version, or If-None-Exist (or a conditional delete's "
    "search) matches more than one resource",
    410: "The resource (or that version of it) was deleted",
    413: "The body is over JOURNEY_MAX_PUSH_BYTES (read no further)",
    401: "No key, or not a key this server knows (a push key, or on $match an API key)",
    403: "The client lacks the scope the operation needs",
    429: "The client is past its rate limit (Retry-After says when to try again)",
    415: "A Content-Type other than application/fhir+json or application/json",
    422: "The resource fails FHIR R4 validation (the issue names the FHIR path)",
}


def fhir_outcomes(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"model": OperationOutcome, "description": _ERRORS[status]} for status in statuses
    }


_WRITE_ERRORS = fhir_outcomes(400, 404, 412, 413, 415, 422)
_READ_ERRORS = fhir_outcomes(400, 404, 410)
# For /docs and for schemathesis's first requests: a write that succeeds.
_PATIENT = {
    "resourceType": "Patient",
    "identifier": [{"system": "urn:oid:1.2.3", "value": "MRN-1"}],
    "gender": "female",
    "birthDate": "1970-02-03",
}
_TRANSACTION = {
    "resourceType": "Bundle",
    "type": "transaction",
    "entry": [
        {
            "fullUrl": "urn:uuid:6f0c6f1e-4a8e-4f5e-9b7e-2f1f3f0b1a11",
            "resource": _PATIENT,
            "request": {
                "method": "POST",
                "url": "Patient",
                "ifNoneExist": "identifier=urn:oid:1.2.3|MRN-1",
            },
        },
        {
            "resource": {
                "resourceType": "Encounter",
                "status": "finished",
                "class": {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": "EMER",
                },
                "subject": {"reference": "urn:uuid:6f0c6f1e-4a8e-4f5e-9b7e-2f1f3f0b1a11"},
                "period": {"start": "2026-03-01T10:00:00Z"},
            },
            "request": {"method": "POST", "url": "Encounter"},
        },
    ],
}
ResourceType = Annotated[str, Path(description="A FHIR R4 resource type", examples=["Patient"])]
ResourceId = Annotated[
    str,
    Path(pattern=FHIR_ID, description="The resource's id (a FHIR id)", examples=["example-1"]),
]


async def get_push(request: Request) -> PushService:
    push: PushService = request.app.state.push
    return push


async def pushing_source(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_push_key)],
) -> str:
    """The source whose push key the caller presents; 401 otherwise."""
    challenge = {"WWW-Authenticate": 'Bearer realm="fhir-journey push"'}
    if credentials is None:
        raise FhirError(
            401, "login", "send a push key as 'Authorization: Bearer <key>'", None, challenge
        )
    presented = credentials.credentials.encode()
    keys: dict[str, str] = request.app.state.push_keys
    found = None
    # Compare with every key in constant time: timing tells nothing about the keys.
    for key, source in keys.items():
        if secrets.compare_digest(presented, key.encode()):
            found = source
    if found is None:
        raise FhirError(401, "login", "the push key is not valid", None, challenge)
    _admit(request, f"push:{found}")
    return found


def _admit(request: Request, client: str) -> None:
    """As `deps.admit`, answering a 429 as an OperationOutcome."""
    wait = admit(request, client)
    if wait:
        raise FhirError(429, "throttled", past_rate(wait), None, {"Retry-After": str(wait)})


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


async def read_json(request: Request, limit: int) -> Any:
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
    if any(issue.code == "transient" for issue in result.warnings):
        # Stored, not yet mapped: said whatever the client asked to get back (the
        # OperationOutcome, with Prefer: return=OperationOutcome, says it in words).
        headers[MAPPING_LAGS_HEADER] = "lags"
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


@router.get(
    "/metadata", summary="CapabilityStatement (no key needed)", response_model=CapabilityStatement
)
def metadata(request: Request, settings: SettingsDep) -> FhirResponse:
    base = str(request.base_url).rstrip("/") + "/fhir"
    return FhirResponse(capability_statement(base, VERSION, settings.max_bundle_entries))


@router.post(
    "",
    summary="A transaction or batch Bundle",
    response_model=Bundle,
    responses=fhir_outcomes(400, 412, 413, 415, 422),
    openapi_extra=fhir_request_body(
        RequestBundle,
        "A transaction (all or nothing) or batch (each entry alone) Bundle",
        _TRANSACTION,
    ),
)
@router.post("/", include_in_schema=False)  # clients differ on the trailing slash
async def bundle(
    request: Request, settings: SettingsDep, push: PushDep, source: SourceDep
) -> FhirResponse:
    """Each entry's response says what happened to it; `Prefer: return=minimal` leaves
    out the resources, `return=representation` (the default) includes them."""
    body = await read_json(request, settings.max_push_bytes)
    if not isinstance(body, dict):
        raise FhirError(400, "structure", "the body must be a JSON object (a Bundle)")
    entries_sent = body.get("entry")
    if isinstance(entries_sent, list) and len(entries_sent) > settings.max_bundle_entries:
        raise FhirError(
            413,
            "too-costly",
            f"the Bundle has {len(entries_sent)} entries, over the limit of "
            f"{settings.max_bundle_entries} (JOURNEY_MAX_BUNDLE_ENTRIES); send it in parts",
            "Bundle.entry",
        )
    kind, results = await asyncio.to_thread(push.process_bundle, source, body)
    entries: list[dict[str, Any]] = []
    representation = _prefer(request) == "representation"
    for result in results:
        if isinstance(result, FhirError):
            entries.append({"response": {"status": str(result.status), "outcome": result.outcome}})
            continue
        if isinstance(result, DeleteResult):
            entries.append({"response": _deleted_entry(result)})
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


def _deleted_entry(result: DeleteResult) -> dict[str, Any]:
    response: dict[str, Any] = {
        "status": result.status_line,
        "outcome": operation_outcome(result.issues),
    }
    if result.etag:
        response["etag"] = result.etag
    if result.deletion is not None:
        response["lastModified"] = result.deletion.received_at
    return response


MATCH_GRADE = "http://hl7.org/fhir/StructureDefinition/match-grade"


@dataclass(frozen=True, slots=True)
class MatchScope:
    """Whose Patients a $match may answer: a push key's own source's (`sources`), or
    those of the people a journey reader may read (`reader`)."""

    sources: list[str] | None = None
    reader: Principal | None = None


async def matching_scope(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_push_key)],
) -> MatchScope:
    """Who may ask $match about whom: an API key (a journey reader) about the people it
    may read, a push key only about its own source's Patients; 401 otherwise."""
    challenge = {"WWW-Authenticate": 'Bearer realm="fhir-journey"'}
    if credentials is None:
        raise FhirError(
            401, "login", "send an API key or a push key as a Bearer token", None, challenge
        )
    reader = await _journey_client(request, credentials.credentials)
    if reader is not None:
        _must_hold(reader, Permission.READ_PEOPLE)
        if reader.patient is not None:
            raise FhirError(403, "forbidden", "a patient-level token cannot search Patients")
        return MatchScope(reader=reader)
    return MatchScope(sources=[await pushing_source(request, credentials)])


async def _journey_client(request: Request, credential: str) -> Principal | None:
    """The journey client (API key or OAuth2 token) presenting this credential, or None
    when it is none (it may still be a push key); an invalid token is a 401."""
    authenticator: Authenticator = request.app.state.authenticator
    try:
        return await authenticator.principal(credential)
    except TokenRejected as exc:
        if credential.count(".") == 2:
            raise FhirError(401, "login", str(exc), None, _CHALLENGE) from None
        return None
    except IssuerKeysUnavailable as exc:
        raise FhirError(503, "transient", str(exc), None, {"Retry-After": "30"}) from None


def _must_hold(principal: Principal, *permissions: Permission) -> None:
    refusal = lacking(principal, permissions)
    if refusal is not None:
        raise FhirError(403, "forbidden", refusal[0], None, refusal[1])


@router.post(
    "/Patient/$match",
    summary="Patient/$match: the stored Patients that may be this one",
    response_model=Bundle,
    responses=fhir_outcomes(400, 401, 413, 415),
    openapi_extra=fhir_request_body(
        FhirResource,
        "Parameters with `resource` (a Patient), optional `onlyCertainMatches` and `count`",
        {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "resource", "resource": _PATIENT},
                {"name": "onlyCertainMatches", "valueBoolean": False},
                {"name": "count", "valueInteger": 5},
            ],
        },
    ),
)
async def patient_match(
    request: Request,
    settings: SettingsDep,
    engine: ReadStoreDep,
    scope: Annotated[MatchScope, Depends(matching_scope)],
) -> FhirResponse:
    """A searchset Bundle of the stored Patients that may be the given one, best
    first, each with its match probability (`search.score`) and grade (certain,
    probable, possible) in the match-grade extension. An API key searches every
    source; a push key only its own. Asking stores nothing."""
    body = await read_json(request, settings.max_push_bytes)
    patient, only_certain, count = _match_parameters(body)
    rules = store_pack(engine).identity

    def run() -> list[Candidate]:
        with engine.connect() as conn:
            if scope.reader is None:
                return match_patient(conn, patient, rules, scope.sources)
            shown = readable(conn, scope.reader).where(person_links.c.person_id)
            return match_patient(conn, patient, rules, None, shown)

    found = await asyncio.to_thread(run)
    if only_certain:
        found = [c for c in found if c.grade == "certain"]
    found = found[:count]
    base = str(request.base_url).rstrip("/") + "/fhir"
    return FhirResponse(
        {
            "resourceType": "Bundle",
            "id": new_id(),
            "type": "searchset",
            "total": len(found),
            "entry": [
                {
                    "fullUrl": f"{base}/Patient/{c.key[1]}",
                    "resource": c.resource,
                    "search": {
                        "mode": "match",
                        "score": round(c.score, 4),
                        "extension": [{"url": MATCH_GRADE, "valueCode": c.grade}],
                    },
                }
                for c in found
            ],
        }
    )


@router.api_route(
    "/Patient/$match", methods=["GET", "PUT", "PATCH", "DELETE"], include_in_schema=False
)
async def patient_match_other_methods() -> FhirResponse:
    """$match is a POST; without this, a PUT would reach the update route and be read
    as a Patient with the id "$match"."""
    raise FhirError(405, "not-supported", "Patient/$match is POST only", None, {"Allow": "POST"})


def _match_parameters(body: Any) -> tuple[dict[str, Any], bool, int]:
    """The Patient, onlyCertainMatches and count of a $match Parameters body; 400 with
    the element named when it is not one."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise FhirError(400, "invalid", "the body must be a Parameters resource", "resourceType")
    patient: Any = None
    only_certain, count = False, 10
    for index, parameter in enumerate(body.get("parameter") or ()):
        where = f"Parameters.parameter[{index}]"
        if not isinstance(parameter, dict):
            raise FhirError(400, "structure", "a parameter must be an object", where)
        name = parameter.get("name")
        if name == "resource":
            patient = parameter.get("resource")
        elif name == "onlyCertainMatches":
            value = parameter.get("valueBoolean")
            if not isinstance(value, bool):
                raise FhirError(400, "invalid", "onlyCertainMatches is a valueBoolean", where)
            only_certain = value
        elif name == "count":
            value = parameter.get("valueInteger")
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 100:
                raise FhirError(400, "invalid", "count is a valueInteger from 1 to 100", where)
            count = value
    if not isinstance(patient, dict) or patient.get("resourceType") != "Patient":
        raise FhirError(
            400,
            "required",
            "a parameter 'resource' holding a Patient is required",
            "Parameters.parameter",
        )
    return patient, only_certain, count


@router.post(
    "/{resource_type}",
    summary="Create, with a server-assigned id",
    status_code=201,
    response_model=FhirResource,
    responses={
        200: {
            "model": FhirResource,
            "description": "The source already holds this content: nothing changed",
        },
        **_WRITE_ERRORS,
    },
    openapi_extra=fhir_request_body(FhirResource, "The resource, of the type in the URL", _PATIENT),
)
async def create(
    resource_type: ResourceType,
    request: Request,
    settings: SettingsDep,
    push: PushDep,
    source: SourceDep,
    if_none_exist: Annotated[str | None, Header()] = None,
) -> FhirResponse:
    """`Prefer: return=representation` (the default) answers the resource as stored,
    `return=OperationOutcome` an OperationOutcome, `return=minimal` no body."""
    _known_type(resource_type)
    resource = await read_json(request, settings.max_push_bytes)
    _check_type(resource, resource_type)
    write = PlannedWrite(0, "POST", resource_type, new_id(), resource, None, if_none_exist, None)
    return _written(request, await asyncio.to_thread(push.write_one, source, write))


@router.put(
    "/{resource_type}/{resource_id}",
    summary="Create or update with the client's id",
    response_model=FhirResource,
    responses={201: {"model": FhirResource, "description": "Created"}, **_WRITE_ERRORS},
    openapi_extra=fhir_request_body(
        FhirResource, "The resource, with the id in the URL", {**_PATIENT, "id": "example-1"}
    ),
)
async def update(
    resource_type: ResourceType,
    resource_id: ResourceId,
    request: Request,
    settings: SettingsDep,
    push: PushDep,
    source: SourceDep,
    if_match: Annotated[str | None, Header()] = None,
) -> FhirResponse:
    """`Prefer` as for a create; `If-Match: W/"<version>"` updates only that version."""
    _known_type(resource_type)
    _fhir_id(resource_type, resource_id)
    resource = await read_json(request, settings.max_push_bytes)
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


_DELETED: dict[int | str, dict[str, Any]] = {
    200: {
        "model": OperationOutcome,
        "description": "What the delete did: deleted, already "
        "deleted, nothing held (remembered as deleted) or nothing found by the search",
    },
    204: {"description": "The same, with Prefer: return=minimal"},
}


@router.delete(
    "/{resource_type}/{resource_id}",
    summary="Delete (a version that is a deletion; a later read is 410 Gone)",
    response_model=OperationOutcome,
    responses={**_DELETED, **fhir_outcomes(400, 404, 412)},
)
async def delete(
    resource_type: ResourceType,
    resource_id: ResourceId,
    request: Request,
    push: PushDep,
    source: SourceDep,
    if_match: Annotated[str | None, Header()] = None,
) -> FhirResponse:
    """Deleting again, or deleting what this source never sent, is fine (200): the
    deletion is remembered, so a version no newer than it arriving later stays
    history. Another source's resource is 404 and stays as it is. `If-Match:
    W/"<version>"` deletes only that version."""
    _known_type(resource_type)
    _fhir_id(resource_type, resource_id)
    planned = PlannedDelete(0, resource_type, resource_id, None, if_match)
    return _deleted(request, await asyncio.to_thread(push.delete_one, source, planned))


@router.delete(
    "/{resource_type}",
    summary="Conditional delete: the one resource a search finds",
    response_model=OperationOutcome,
    responses={**_DELETED, **fhir_outcomes(400, 404, 412)},
)
async def conditional_delete(
    resource_type: ResourceType,
    request: Request,
    push: PushDep,
    source: SourceDep,
    identifier: SearchIdentifier = None,
    id_: SearchId = None,
    if_match: Annotated[str | None, Header()] = None,
) -> FhirResponse:
    """No match: nothing deleted (200); one: deleted; several: 412, nothing deleted."""
    _known_type(resource_type)
    planned = PlannedDelete(0, resource_type, None, request.url.query, if_match)
    return _deleted(request, await asyncio.to_thread(push.delete_one, source, planned))


def _deleted(request: Request, result: DeleteResult) -> FhirResponse:
    headers = {"ETag": result.etag} if result.etag else {}
    if any(issue.code == "transient" for issue in result.issues):
        headers[MAPPING_LAGS_HEADER] = "lags"
    if _prefer(request) == "minimal":
        return FhirResponse(None, status_code=204, headers=headers)
    return FhirResponse(operation_outcome(result.issues), headers=headers)


@router.get(
    "/{resource_type}/{resource_id}/_history",
    summary="A resource's history: its versions and deletions, newest first",
    response_model=Bundle,
    responses=_READ_ERRORS,
)
async def instance_history(
    resource_type: ResourceType,
    resource_id: ResourceId,
    request: Request,
    push: PushDep,
    source: SourceDep,
    count: Annotated[int, Query(alias="_count", ge=1, le=1000)] = 100,
) -> FhirResponse:
    """A history Bundle: each version with its resource, a deletion as an entry with
    no resource and `request.method` DELETE."""
    _known_type(resource_type)
    _fhir_id(resource_type, resource_id)
    versions = await asyncio.to_thread(push.history, source, resource_type, resource_id, count)
    base = str(request.base_url).rstrip("/") + "/fhir"
    name = f"{resource_type}/{resource_id}"
    entries: list[dict[str, Any]] = []
    for position, stored in enumerate(versions):
        response = {
            "status": "200 OK",
            "etag": f'W/"{stored.version_id}"',
            "lastModified": stored.received_at,
        }
        if stored.deleted:
            entries.append(
                {
                    "fullUrl": f"{base}/{name}",
                    "request": {"method": "DELETE", "url": name},
                    "response": {**response, "status": "204 No Content"},
                }
            )
            continue
        # The oldest version held created it, as did the first after a deletion.
        created = position == len(versions) - 1 or versions[position + 1].deleted
        entries.append(
            {
                "fullUrl": f"{base}/{name}",
                "resource": with_server_meta(stored),
                # PUT Type/id replays it faithfully, whichever way it came.
                "request": {"method": "PUT", "url": name},
                "response": {**response, "status": "201 Created" if created else "200 OK"},
            }
        )
    return FhirResponse(
        {
            "resourceType": "Bundle",
            "id": new_id(),
            "type": "history",
            "total": len(entries),
            "link": [{"relation": "self", "url": f"{base}/{name}/_history"}],
            "entry": entries,
        }
    )


def journey_client(*permissions: Permission) -> Any:
    """A dependency: the journey client (an API key or OAuth2 token, not a push key)
    holding every one of `permissions`; 401 or 403 as an OperationOutcome otherwise."""

    async def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_push_key)],
    ) -> Principal:
        if credentials is None:
            raise FhirError(
                401, "login", "send an API key or token as a Bearer token", None, _CHALLENGE
            )
        principal = await _journey_client(request, credentials.credentials)
        if principal is None:
            raise FhirError(401, "login", "the API key is not valid", None, _CHALLENGE)
        _admit(request, principal.label)
        _must_hold(principal, *permissions)
        return principal

    return check


_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="fhir-journey"'}
# The search parameters a search and a conditional delete take.
SearchIdentifier = Annotated[
    str | None,
    Query(pattern=WITHOUT_NUL, description="system|value, or value (at least one parameter)"),
]
SearchId = Annotated[
    str | None, Query(alias="_id", pattern=WITHOUT_NUL, description="The resource's id")
]


@router.get(
    "/EpisodeOfCare",
    summary="EpisodeOfCare: a person's episodes as FHIR R4 (search by patient)",
    response_model=Bundle,
    responses=fhir_outcomes(400, 401, 403),
)
async def episodes_of_care(
    request: Request,
    engine: ReadStoreDep,
    reader: Annotated[Principal, Depends(journey_client(Permission.READ_PEOPLE))],
    patient: Annotated[
        str,
        Query(
            pattern=WITHOUT_NUL,
            description="The person id (from /people), as an id or Patient/{id}",
        ),
    ],
) -> FhirResponse:
    person_id = patient.removeprefix("Patient/")
    _fhir_id("Patient", person_id, "patient")

    def read() -> tuple[str | None, list[dict[str, Any]]]:
        pack = store_pack(engine)
        with engine.connect() as conn:
            resolved = visible_person(conn, reader, person_id)
            if resolved is None:
                return None, []
            return resolved, episodes_of_person(conn, resolved, pack, utc_now())

    resolved, episodes = await asyncio.to_thread(read)
    # No such person: an empty searchset, as a FHIR search for an unknown patient answers.
    return searchset(
        request,
        "EpisodeOfCare",
        [(e["id"], episode_of_care(resolved or person_id, e)) for e in episodes],
    )


@router.get(
    "/{resource_type}/{resource_id}",
    summary="Read the current version",
    response_model=FhirResource,
    responses=_READ_ERRORS,
)
async def read(
    resource_type: ResourceType, resource_id: ResourceId, push: PushDep, source: SourceDep
) -> FhirResponse:
    _known_type(resource_type)
    _fhir_id(resource_type, resource_id)
    return _read(await asyncio.to_thread(push.read, source, resource_type, resource_id))


@router.get(
    "/{resource_type}/{resource_id}/_history/{version_id}",
    summary="Read one version",
    response_model=FhirResource,
    responses=_READ_ERRORS,
)
async def vread(
    resource_type: ResourceType,
    resource_id: ResourceId,
    version_id: str,
    push: PushDep,
    source: SourceDep,
) -> FhirResponse:
    _known_type(resource_type)
    _fhir_id(resource_type, resource_id)
    _fhir_id(resource_type, version_id, "meta.versionId")
    stored = await asyncio.to_thread(push.vread, source, resource_type, resource_id, version_id)
    return _read(stored)


@router.get(
    "/{resource_type}",
    summary="Search by identifier or _id",
    response_model=Bundle,
    responses=fhir_outcomes(400, 404),
)
async def search(
    resource_type: ResourceType,
    request: Request,
    push: PushDep,
    source: SourceDep,
    # Declared for the OpenAPI document; the search reads the query string itself, where
    # a parameter may repeat (each one narrows the result).
    identifier: SearchIdentifier = None,
    id_: SearchId = None,
) -> FhirResponse:
    _known_type(resource_type)
    query = request.url.query
    ids = await asyncio.to_thread(push.search_ids, source, resource_type, query)
    found = [await asyncio.to_thread(push.read, source, resource_type, rid) for rid in ids]
    return searchset(request, resource_type, [(s.resource_id, with_server_meta(s)) for s in found])


def searchset(
    request: Request, resource_type: str, found: list[tuple[str, dict[str, Any]]]
) -> FhirResponse:
    """A searchset Bundle of (id, resource) matches, linking back to the search."""
    base = str(request.base_url).rstrip("/") + "/fhir"
    return FhirResponse(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(found),
            "link": [{"relation": "self", "url": f"{base}/{resource_type}?{request.url.query}"}],
            "entry": [
                {
                    "fullUrl": f"{base}/{resource_type}/{resource_id}",
                    "resource": resource,
                    "search": {"mode": "match"},
                }
                for resource_id, resource in found
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
