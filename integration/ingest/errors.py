"""Errors raised on the way in (validation before the raw zone).

    IntegrationError                integration/errors.py
     └── ResourceRejected           not valid FHIR R4, too deep or holding a NUL;
                                    names the FHIR path, never the value

A rejected resource stops nothing: the pipeline quarantines it with this
error and carries on; the push endpoint answers it as an OperationOutcome.
"""

from integration.errors import IntegrationError


class ResourceRejected(IntegrationError):
    """A resource that is not valid FHIR R4; `fhir_path` names the element."""

    def __init__(self, fhir_path: str, message: str) -> None:
        super().__init__(f"{fhir_path}: {message}")
        self.fhir_path = fhir_path
        self.message = message
