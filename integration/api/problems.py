"""RFC 9457 problem details: every error the API returns is `application/problem+json`."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from integration.errors import IntegrationError
from integration.push.errors import FhirError

PROBLEM_MEDIA_TYPE = "application/problem+json"


class ApiProblem(IntegrationError):
    """Raise in a route to answer with a problem document."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


def problem_response(
    request: Request,
    status: int,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    body = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        **extra,
    }
    return Response(
        orjson.dumps(body), status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


def is_fhir(path: str) -> bool:
    """Is this a path of the FHIR interface, which answers OperationOutcomes?"""
    return path == "/fhir" or path.startswith("/fhir/")


def outcome_response(
    status: int, code: str, diagnostics: str, headers: dict[str, str] | None = None
) -> Response:
    """What /fhir answers instead of problem JSON: an OperationOutcome."""
    return fhir_error_response(FhirError(status, code, diagnostics, headers=headers))


def fhir_error_response(exc: FhirError) -> Response:
    return Response(
        orjson.dumps(exc.outcome),
        status_code=exc.status,
        media_type="application/fhir+json",
        headers=exc.headers,
    )


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> str:
    """The Allow header of a 405: each method some route takes on this path. Starlette
    names only the methods of the first route matching the path (PUT alone for
    /fhir/Patient/1, which GET reads too). Asked of the routes as they route, one
    method at a time, so routers nested in any way answer the same."""
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return ", ".join(allowed)


# A FHIR path parameter outside its rule is the element of the resource it names.
_PATH_ELEMENTS = {"resource_id": "id", "version_id": "meta.versionId"}


def _fhir_parameter_error(request: Request, exc: RequestValidationError) -> FhirError:
    """The first invalid parameter of a /fhir request, named as FHIR names it: an id in
    the URL outside the id rule is `Patient.id` (never its value)."""
    error = exc.errors()[0]
    place, name = str(error["loc"][0]), ".".join(str(p) for p in error["loc"][1:])
    resource_type = request.path_params.get("resource_type")
    element = _PATH_ELEMENTS.get(name) if place == "path" else None
    if element is not None and isinstance(resource_type, str):
        expression = f"{resource_type}.{element}"
        return FhirError(
            400,
            "invalid",
            f"{expression} in the URL is not a valid FHIR id ([A-Za-z0-9-.], 1-64 characters)",
            expression,
        )
    return FhirError(400, "invalid", f"invalid parameter: {name}", name or None)


def install_problem_handlers(app: FastAPI) -> None:
    async def on_fhir_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, FhirError)
        return fhir_error_response(exc)

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiProblem)
        return problem_response(
            request, exc.status, exc.title, exc.detail, exc.headers, **exc.extra
        )

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        invalid = [
            {
                "in": str(error["loc"][0]),
                "name": ".".join(str(p) for p in error["loc"][1:]),
                "reason": error["msg"],
            }
            for error in exc.errors()
        ]
        names = ", ".join(item["name"] for item in invalid)
        if is_fhir(request.url.path):
            return fhir_error_response(_fhir_parameter_error(request, exc))
        return problem_response(
            request, 400, "Bad Request", f"invalid parameter: {names}", invalid_params=invalid
        )

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        title = {404: "Not Found", 405: "Method Not Allowed"}.get(exc.status_code, "Error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request)
        if is_fhir(request.url.path):
            code = "not-supported" if exc.status_code in (404, 405) else "processing"
            return outcome_response(exc.status_code, code, f"{title}: {exc.detail}", headers)
        return problem_response(request, exc.status_code, title, str(exc.detail), headers)

    app.add_exception_handler(FhirError, on_fhir_error)
    app.add_exception_handler(ApiProblem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
