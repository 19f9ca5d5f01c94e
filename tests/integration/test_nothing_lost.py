"""Property: whatever a file holds, every non-blank line ends up stored or quarantined,
nothing crashes, and the counts add up. Hypothesis writes the files."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from connectors.files import FileReader
from integration.ingest.pipeline import IngestPipeline
from mappings.rulepack import RulePack
from tests.conftest import encounter, patient

ids = st.from_regex(r"[A-Za-z0-9\-]{1,12}", fullmatch=True)
valid = st.one_of(
    ids.map(patient),
    st.tuples(ids, ids).map(lambda pair: encounter(pair[0], pair[1])),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)


def mutate(resource: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    return {**resource, key: value}


# A Bundle line expands to its entries (tested elsewhere); keep lines one-to-one here.
broken_resources = st.builds(
    mutate,
    valid,
    st.sampled_from(["resourceType", "id", "status", "birthDate", "period", "extra"]),
    json_values,
).filter(lambda r: r.get("resourceType") != "Bundle")
garbage = st.text(max_size=40).filter(lambda s: s.strip() and "\n" not in s and "\r" not in s)
lines = st.lists(
    st.one_of(
        valid.map(lambda r: orjson.dumps(r).decode()),
        broken_resources.map(lambda r: orjson.dumps(r).decode()),
        garbage,
    ),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines)
def test_reader_gives_one_item_per_non_blank_line_in_order(content: list[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "f.ndjson"
        path.write_text("\n".join(content) + "\n", encoding="utf-8")
        items = list(FileReader(1 << 20).read(path))
    expected = [f"line {n}" for n, line in enumerate(content, start=1) if line.strip()]
    assert [item.location for item in items] == expected


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines)
def test_import_stores_or_quarantines_every_line(
    pack: RulePack, engine: Engine, content: list[str]
) -> None:
    """On both backends; the examples share one store, so repeats count as unchanged."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "f.ndjson"
        path.write_text("\n".join(content) + "\n", encoding="utf-8")
        summary = IngestPipeline(engine, pack, "prop", 1 << 20, batch_size=4).run([path])
    accounted = sum(summary.total(a) for a in ("new", "changed", "unchanged", "quarantined"))
    assert accounted == sum(1 for line in content if line.strip())
