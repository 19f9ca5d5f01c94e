"""The terminal the CLI writes to: results on stdout, errors on stderr."""

from __future__ import annotations

from datetime import date

from rich.console import Console

from integration.clock import day_bound

console = Console()
stderr = Console(stderr=True)


def day_option(value: str | None, option: str, end: bool = False) -> str | None:
    """A YYYY-MM-DD option as the ISO UTC start of that day (of the next, for an end)."""
    if value is None:
        return None
    try:
        return day_bound(date.fromisoformat(value), end)
    except ValueError:
        raise ValueError(f"{option} must be a date, YYYY-MM-DD") from None
