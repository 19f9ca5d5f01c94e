"""The cohort outcome report: the kept episodes, narrowed in the store where it can
and by `mappings.outcomes` elsewhere, measured as of a moment."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Engine

from integration.access.visibility import Readable
from integration.store import episodes as episodes_store
from mappings.model import Job
from mappings.outcomes import CohortFilter, cohort_measures
from mappings.rulepack import RulePack

CSV_COLUMNS = ("id", "title", "value", "numerator", "denominator", "unit", "definition")


@dataclass(frozen=True, slots=True)
class OutcomeQuery:
    as_of: str
    start_from: str | None = None
    start_to: str | None = None
    source: str | None = None
    concern: str | None = None
    job: Job | None = None
    # None: the pack's retention_months.
    retention_months: int | None = None


def outcome_report(
    engine: Engine, pack: RulePack, query: OutcomeQuery, readers: Readable | None = None
) -> dict[str, Any]:
    """`readers`: the people a client may read (its population, less the withheld);
    None: everyone (the CLI)."""
    rules = pack.episodes
    months = query.retention_months or rules.retention_months
    where = CohortFilter(
        start_from=query.start_from,
        start_to=query.start_to,
        source=query.source,
        concern=query.concern,
        job=query.job,
    )
    with engine.connect() as conn:
        kept = episodes_store.stored_episodes(
            conn,
            query.concern,
            query.start_from,
            query.start_to,
            readers.where if readers is not None else None,
        )
        report = cohort_measures(kept, query.as_of, months, where)
        pending = episodes_store.stale_count(conn, readers.where if readers else None)
    filters = {k: v for k, v in asdict(query).items() if v is not None and k != "as_of"}
    filters["retention_months"] = months
    return {
        "as_of": report.pop("as_of"),
        "filters": {k: (v.value if isinstance(v, Job) else v) for k, v in filters.items()},
        **report,
        "people_pending": pending,
    }


def measures_csv(measures: list[dict[str, Any]]) -> str:
    """The measures as CSV, one row each, with the columns of the JSON measure."""
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(measures)
    return out.getvalue()
