"""Database errors described without the data they were about.

A driver's message can quote what was sent: PostgreSQL's DETAIL names the
failing row ("Key (value)=(123-45-6789) already exists", "Failing row
contains (..., Ann Smith, 1970-01-01)") and some messages quote the bad
input itself. Logs and terminals get only what names the place: the error's
class, its SQLSTATE, and the table, column and constraint it concerns.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from mappings.failed import describe_failure


def describe_store_error(exc: BaseException) -> str:
    """One line about a database error that carries no value from any row or statement."""
    original = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    details: list[str] = []
    sqlstate = getattr(original, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate:
        details.append(f"SQLSTATE {sqlstate}")
    diag = getattr(original, "diag", None)
    if diag is not None:  # psycopg: the schema names of the place, never the row
        for label, attribute in (
            ("table", "table_name"),
            ("column", "column_name"),
            ("constraint", "constraint_name"),
        ):
            value = getattr(diag, attribute, None)
            if isinstance(value, str) and value:
                details.append(f"{label} {value}")
    elif type(original).__module__.startswith("sqlite3") and str(original):
        # SQLite's messages name constraints and states ("database is locked"), never values.
        details.append(str(original).splitlines()[0][:200])
    name = type(original).__name__
    return f"{name} ({', '.join(details)})" if details else name


def describe_error(exc: BaseException) -> str:
    """Any error without its message: a database error as `describe_store_error`, any
    other by its type and the code line it came from (`describe_failure`)."""
    return describe_store_error(exc) if isinstance(exc, SQLAlchemyError) else describe_failure(exc)


# SQLSTATE classes of the store being away or busy, not of what was written: connection
# exceptions, insufficient resources, operator intervention, and rollbacks to retry.
_UNAVAILABLE_CLASSES = ("08", "53", "57", "40")
_SQLITE_UNAVAILABLE = ("locked", "busy", "disk", "unable to open", "readonly")


def store_unavailable(exc: BaseException) -> bool:
    """Is this the store failing (stop and retry later), rather than one resource's data
    failing to be written (isolate it and go on)?"""
    if isinstance(exc, InterfaceError | PoolTimeout):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate[:2] in _UNAVAILABLE_CLASSES
    if isinstance(exc, OperationalError) and type(exc.orig).__module__.startswith("psycopg"):
        # No SQLSTATE: psycopg could not connect at all (server down, connections refused).
        return True
    if isinstance(exc, OperationalError):
        message = str(exc.orig).lower()
        return any(word in message for word in _SQLITE_UNAVAILABLE)
    return False
