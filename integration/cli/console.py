"""The terminal the CLI writes to: results on stdout, errors on stderr."""

from __future__ import annotations

from rich.console import Console

console = Console()
stderr = Console(stderr=True)
