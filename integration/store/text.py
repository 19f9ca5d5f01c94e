"""Text as every backend can store it."""

from __future__ import annotations

from typing import overload


@overload
def storable(value: str) -> str: ...
@overload
def storable(value: None) -> None: ...
def storable(value: str | None) -> str | None:
    """NUL is valid in a FHIR string but PostgreSQL text cannot hold it: keep it visible
    as U+FFFD (the raw zone keeps the exact content as JSON, where it is escaped)."""
    return value.replace("\x00", "\ufffd") if value is not None and "\x00" in value else value


@overload
def visible_nul(value: str) -> str: ...
@overload
def visible_nul(value: None) -> None: ...
def visible_nul(value: str | None) -> str | None:
    """NUL kept visible as the JSON escape `\\u0000`, for what the quarantine shows an
    operator as it was received (PostgreSQL text cannot hold the character itself)."""
    return value.replace("\x00", "\\u0000") if value is not None else None
