"""Errors raised by connectors.

    ConnectorError
     └── InputPathError      a path given to the file reader does not exist

Problems inside a file (malformed JSON, a truncated line, an oversize
resource) are not exceptions: they come back as `RawItem`s with a `problem`,
so the caller can quarantine them and carry on with the rest of the file.
"""


class ConnectorError(Exception):
    """Root of every error a connector raises."""


class InputPathError(ConnectorError):
    """A path given for import does not exist or cannot be read."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
