"""The terminal the CLI writes to: results on stdout, errors on stderr."""

from __future__ import annotations

from datetime import date

from rich.console import Console, ConsoleDimensions

from integration.clock import day_bound

# Past any line the CLI prints, short of a resource's whole content.
UNBOUNDED_WIDTH = 10_000


class PipeableConsole(Console):
    """A console as wide as its terminal, and unbounded when it writes to a file or a
    pipe. Rich otherwise takes the width of whichever standard stream is a terminal
    (or 80): `journey sources > file` from a shell cut every column to fit the
    shell's window ("hosp…"), losing what the file was written to keep."""

    @property
    def size(self) -> ConsoleDimensions:
        measured = super().size
        if self.is_terminal:
            return measured
        return ConsoleDimensions(UNBOUNDED_WIDTH, measured.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]


console = PipeableConsole()
stderr = PipeableConsole(stderr=True)


def day_option(value: str | None, option: str, end: bool = False) -> str | None:
    """A YYYY-MM-DD option as the ISO UTC start of that day (of the next, for an end)."""
    if value is None:
        return None
    try:
        return day_bound(date.fromisoformat(value), end)
    except ValueError:
        raise ValueError(f"{option} must be a date, YYYY-MM-DD") from None
