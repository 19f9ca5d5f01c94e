"""Errors raised by connectors.

    ConnectorError
     ├── InputPathError          a path given to the file reader does not exist
     └── FhirHttpError           a FHIR server answered badly (status, url, detail)
          ├── TransientFhirError   408, 429, 5xx, connection or read failure: retried
          └── FatalFhirError       other 4xx, a page that is not a Bundle, a next-link
                                   loop: not retried, reported for its resource type

Problems inside a file (malformed JSON, a truncated line, an oversize
resource) are not exceptions: they come back as `RawItem`s with a `problem`,
so the caller can quarantine them and carry on with the rest of the file.
Messages name URLs, statuses and OperationOutcome diagnostics, never bodies.
"""


class ConnectorError(Exception):
    """Root of every error a connector raises."""


class InputPathError(ConnectorError):
    """A path given for import does not exist or cannot be read."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class FhirHttpError(ConnectorError):
    """A FHIR server request failed; `status` is None when no response came."""

    def __init__(self, url: str, status: int | None, detail: str) -> None:
        where = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"{url}: {where}: {detail}")
        self.url = url
        self.status = status
        self.detail = detail


class TransientFhirError(FhirHttpError):
    """Worth retrying; `retry_after` is the server's Retry-After in seconds, if it sent one."""

    def __init__(
        self, url: str, status: int | None, detail: str, retry_after: float | None = None
    ) -> None:
        super().__init__(url, status, detail)
        self.retry_after = retry_after


class FatalFhirError(FhirHttpError):
    """Retrying will not help."""
