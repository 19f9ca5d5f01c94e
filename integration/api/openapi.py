"""The OpenAPI document: what FastAPI derives from the routes, corrected where it cannot know.

FastAPI files a route's declared error models under the route's own media
type and adds a 422 for every route with parameters. Our answers differ, as
`problems.py` makes them: outside /fhir a Problem is
`application/problem+json`, under /fhir an OperationOutcome in
`application/fhir+json`, and an invalid parameter is a 400, never a 422 (the
422s /fhir declares are FHIR validation failures). Any operation can fail
with a 500 (with a correlation id), and any operation behind a key with a 401.
The /fhir request bodies are read raw (for the size limit and the exact
errors), so their schemas are declared here too.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from integration.api.models import FhirResource, OperationOutcome, ProblemDetails, RequestBundle
from integration.api.problems import is_fhir

PROBLEM_JSON = "application/problem+json"
FHIR_JSON = "application/fhir+json"
REF = "#/components/schemas/{model}"
# Declared in operations by reference; added to the components here.
_EXTRA_SCHEMAS: tuple[type[BaseModel], ...] = (
    ProblemDetails,
    OperationOutcome,
    FhirResource,
    RequestBundle,
)
_FASTAPI_422 = "#/components/schemas/HTTPValidationError"


def ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def problem(status: int, description: str) -> dict[int | str, dict[str, Any]]:
    """A route's `responses` entry for a problem it answers with (outside /fhir)."""
    return {status: {"model": ProblemDetails, "description": description}}


def fhir_request_body(
    model: type[BaseModel], description: str, example: dict[str, Any]
) -> dict[str, Any]:
    """`openapi_extra` for a /fhir write: its body, in both media types it accepts."""
    schema = {"schema": ref(model), "example": example}
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {FHIR_JSON: schema, "application/json": schema},
        }
    }


def _error_response(fhir: bool, description: str) -> dict[str, Any]:
    media, model = (FHIR_JSON, OperationOutcome) if fhir else (PROBLEM_JSON, ProblemDetails)
    return {"description": description, "content": {media: {"schema": ref(model)}}}


def _correct(operation: dict[str, Any], fhir: bool) -> None:
    responses: dict[str, Any] = operation["responses"]
    automatic = responses.get("422", {}).get("content", {}).get("application/json", {})
    if automatic.get("schema", {}).get("$ref") == _FASTAPI_422:
        del responses["422"]
    for response in responses.values():
        content = response.get("content", {})
        # Under the route's media type: application/json, or text/plain for /metrics.
        for media in [m for m, c in content.items() if c.get("schema") == ref(ProblemDetails)]:
            content[PROBLEM_JSON] = content.pop(media)
    if operation.get("security"):
        responses.setdefault(
            "401", _error_response(fhir, "Missing or wrong key (with a WWW-Authenticate challenge)")
        )
        responses.setdefault(
            "429",
            _error_response(fhir, "The client is past its rate limit (see Retry-After)"),
        )
    responses.setdefault(
        "500",
        _error_response(
            fhir,
            "An unexpected error; its correlation id (also in X-Request-ID) names the log line",
        ),
    )
    responses.setdefault(
        "503",
        _error_response(
            fhir, "The store is busy or unreachable; try again after Retry-After seconds"
        ),
    )


def openapi_document(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for model in _EXTRA_SCHEMAS:
        schema = model.model_json_schema(ref_template=REF, mode="serialization")
        for name, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(name, definition)
        schemas.setdefault(model.__name__, schema)
    for path, item in document["paths"].items():
        for operation in item.values():
            _correct(operation, is_fhir(path))
    return document


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = openapi_document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
