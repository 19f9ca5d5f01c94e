"""How a listing command prints: a table for a person to read, or, for scripts, one JSON
document (`--json`) or CSV with a header row (`--csv`).

JSON and CSV go to stdout through `typer.echo`, never through Rich: no colours, no
markup, no wrapping, nothing but the document. Their keys and columns are part of
the CLI's interface (README, "Output for scripts"): add, never rename.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from enum import Enum
from typing import Annotated, Any

import orjson
import typer

AsJson = Annotated[
    bool, typer.Option("--json", help="Print one JSON document (stable keys), for scripts")
]
AsCsv = Annotated[bool, typer.Option("--csv", help="Print CSV with a header row, for scripts")]


class OutputFormat(Enum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


def output_format(as_json: bool, as_csv: bool = False) -> OutputFormat:
    """The format the options ask for; both at once is a usage error naming them."""
    if as_json and as_csv:
        raise typer.BadParameter(
            "--json and --csv cannot be used together: choose one", param_hint="'--json'/'--csv'"
        )
    if as_json:
        return OutputFormat.JSON
    return OutputFormat.CSV if as_csv else OutputFormat.TABLE


def print_json(document: Any) -> None:
    typer.echo(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())


def print_csv(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """Rows as CSV under `columns` (keys a row lacks are empty cells, None is empty)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: _cell(value) for key, value in row.items()} for row in rows)
    typer.echo(out.getvalue(), nl=False)


def _cell(value: Any) -> Any:
    # As JSON writes them, so a script reads true/false the same from either format.
    return ("true" if value else "false") if isinstance(value, bool) else value
