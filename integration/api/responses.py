"""JSON responses rendered with orjson (FastAPI's own ORJSONResponse is deprecated).

Subclasses of JSONResponse, so that FastAPI documents a route's response model
under the response's media type (for any other class it documents a string).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse


class OrjsonResponse(JSONResponse):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class FhirResponse(JSONResponse):
    """What /fhir answers: `application/fhir+json`; no body for `Prefer: return=minimal`."""

    media_type = "application/fhir+json"

    def render(self, content: Any) -> bytes:
        return b"" if content is None else orjson.dumps(content)
