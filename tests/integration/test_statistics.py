"""PostgreSQL plans with statistics of every table an import grows.

Without them (autovacuum off, or not come round yet) its plans assume the table is as
empty as at the last ANALYZE: filling a store to 100k people, each batch's delete of
the new Patients' blocking keys read every key of the source, a quadratic import
(the PostgreSQL backend spent minutes of CPU per 10k people on it)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, text

from integration.cli.demo_population import generate
from integration.ingest.pipeline import IngestPipeline
from mappings.rulepack import RulePack
from tests.conftest import write_ndjson

# Tables that stay small whatever the store holds, or are not written by an import.
NOT_GROWN_BY_IMPORTS = {"alembic_version"}


def test_every_table_an_import_grows_has_statistics_when_it_ends(
    postgres_engine: Engine, pack: RulePack, tmp_path: Path
) -> None:
    resources = [r for group in generate(seed=5, people=300).values() for r in group]
    path = write_ndjson(tmp_path / "population.ndjson", *resources)
    IngestPipeline(postgres_engine, pack, "clinic", 1 << 20).run([path])
    with postgres_engine.connect() as conn:
        tables = conn.execute(
            text(
                "SELECT relname, reltuples FROM pg_class "
                "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
            )
        ).all()
        unplanned = []
        for name, estimate in tables:
            rows = conn.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one()
            # reltuples is -1 until a table's first ANALYZE (or VACUUM).
            if rows >= 300 and estimate < 0 and name not in NOT_GROWN_BY_IMPORTS:
                unplanned.append(f"{name} ({rows} rows)")
    assert len(resources) > 3_000
    assert unplanned == [], unplanned
