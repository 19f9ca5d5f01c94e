"""Errors raised by connectors.

    JourneyError                 fhir_journey/errors.py: the project's root
     └── ConnectorError
          ├── InputPathError          a path given to the file reader does not exist
          ├── FhirHttpError           a FHIR server answered badly (status, url, detail)
          │    ├── TransientFhirError   408, 429, 5xx, connection or read failure: retried
          │    └── FatalFhirError       other 4xx, a page that is not a Bundle, a next-link
          │                             loop: not retried, reported for its resource type
          ├── ExportExpired           the server no longer knows a Bulk export (404/410)
          ├── ExportTimedOut          a Bulk export still running at the deadline
          └── StreamFailed            a download feeding a `QueuedStream` failed

Problems inside a file (malformed JSON, a truncated line, an oversize
resource) are not exceptions: they come back as `RawItem`s with a `problem`,
so the caller can quarantine them and carry on with the rest of the file.
Messages name URLs, statuses and OperationOutcome diagnostics, never bodies.
"""

from fhir_journey.errors import JourneyError


class ConnectorError(JourneyError):
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


class ExportExpired(ConnectorError):
    """The server no longer knows the export (its status URL answers 404 or 410)."""

    def __init__(self, status_url: str, status: int) -> None:
        super().__init__(f"{status_url}: HTTP {status}: the server no longer knows this export")
        self.status_url = status_url


class ExportTimedOut(ConnectorError):
    """The export was still running when the configured deadline passed."""

    def __init__(self, status_url: str, seconds: float, progress: str | None) -> None:
        state = f" (last progress: {progress})" if progress else ""
        super().__init__(
            f"{status_url}: export not complete after {seconds:.0f} s{state}; "
            "the next sync resumes polling it"
        )


class StreamFailed(ConnectorError):
    """The producer gave up (the download failed); the reader stops with this."""
