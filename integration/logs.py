"""How every process logs: the level, and lines as text (the default) or one JSON
object each (`JOURNEY_LOG_FORMAT=json`) for a log collector.

A JSON line holds the time, level, logger and message, the request id while a
request is being answered, and, for a request's own line, its method, route
template, status and duration. Log messages are written to name sources, paths
and ids, never resource content; a JSON line also leaves out an exception's
message (which can quote what was being processed), keeping its type and frames.
"""

from __future__ import annotations

import logging
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# Record attributes a JSON line carries when a log call passes them (`extra=`).
FIELDS = ("method", "route", "status", "duration_ms")
# Loggers that say too much: SQL parameters carry resource content, and httpx logs
# every URL with its query, which can carry identifiers (patient=...).
QUIETED = ("alembic", "sqlalchemy", "httpx")

# The id of the request being answered in this context (set by the API).
request_id: ContextVar[str | None] = ContextVar("journey_request_id", default=None)


def exception_trail(exc: BaseException) -> str:
    """The traceback of `exc` and the exceptions it was raised from or during, with
    each exception's type but without its message."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frames = traceback.StackSummary.extract(traceback.walk_tb(current.__traceback__))
        kind = type(current)
        parts.append("".join(frames.format()) + f"{kind.__module__}.{kind.__qualname__}")
        cause = current.__cause__
        current = (
            cause if cause is not None or current.__suppress_context__ else current.__context__
        )
    return "\nwhich was raised while handling (or from):\n".join(parts)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None) or request_id.get()
        if rid:
            line["request_id"] = rid
        for field in FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                line[field] = value
        if record.exc_info and record.exc_info[1] is not None:
            line["exception"] = exception_trail(record.exc_info[1])
        return orjson.dumps(line, default=str).decode()


def configure_logging(level: str, log_format: LogFormat) -> None:
    """The root logger's level and handler (on stderr), once per process; what a test
    harness or an embedding program set up first is left as it is."""
    handler = logging.StreamHandler()
    json = log_format == "json"
    handler.setFormatter(JsonFormatter() if json else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
    for name in QUIETED:
        logging.getLogger(name).setLevel(logging.WARNING)
