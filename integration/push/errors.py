"""Errors raised while answering a push: each is answered as an OperationOutcome.

    IntegrationError                integration/errors.py
     └── FhirError                  a FHIR interaction answered with `status` and one
                                    issue (code, diagnostics, expression)

Diagnostics name element paths, entries and parameters, never values.
"""

from __future__ import annotations

from typing import Any

from integration.errors import IntegrationError
from integration.push.outcome import Issue, operation_outcome


class FhirError(IntegrationError):
    """Raise to answer a FHIR interaction with `status` and an OperationOutcome."""

    def __init__(
        self,
        status: int,
        code: str,
        diagnostics: str,
        expression: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.issue = Issue("error", code, diagnostics, expression)
        self.headers = headers or {}

    @property
    def outcome(self) -> dict[str, Any]:
        return operation_outcome([self.issue])
