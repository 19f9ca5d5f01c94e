"""Import benchmark: how close the import comes to its floors, measured in one run.

Generates N synthetic resources (the demo population, scaled) as one NDJSON
file, then measures on this machine, single process:

  1. bare orjson parse rate           (the JSON floor)
  2. bare fhir.resources R4B validation (the validation floor)
  3. import rate: read + validate + store (SQLite) + map, end to end
  4. mapping-alone rate: the rule pack over already-parsed resources

and prints each with its ratio to the floors. Targets for later issues:
import >= 70% of bare validation; mapping alone >= 100k resources/s per core.

    scripts/bench --resources 20000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
from fhir.resources.R4B import get_fhir_model_class

from integration.cli.demo_population import generate
from integration.ingest.pipeline import IngestPipeline
from integration.store.engine import open_store
from mappings.encounter import map_encounter
from mappings.model import SourceRef
from mappings.questionnaire_response import map_instrument_responses
from mappings.rulepack import load_rule_pack


def write_population(path: Path, target: int) -> tuple[int, dict[str, int]]:
    people = max(10, target // 9)
    mix: dict[str, int] = defaultdict(int)
    written = 0
    with path.open("wb") as handle:
        for resources in generate(seed=11, people=people).values():
            for resource in resources:
                if written >= target:
                    break
                handle.write(orjson.dumps(resource) + b"\n")
                mix[resource["resourceType"]] += 1
                written += 1
    return written, dict(mix)


def timed(label: str, count: int, run: Any) -> float:
    started = time.perf_counter()
    run()
    seconds = time.perf_counter() - started
    rate = count / seconds
    print(f"  {label:<44} {rate:>12,.0f} resources/s  ({seconds:.2f} s)")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--resources", type=int, default=20_000, help="how many resources to generate"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="journey-bench-") as folder:
        data = Path(folder) / "population.ndjson"
        count, mix = write_population(data, args.resources)
        size_mb = data.stat().st_size / 1e6
        print(
            f"{count:,} resources, {size_mb:.1f} MB NDJSON: "
            + ", ".join(f"{k} {v}" for k, v in sorted(mix.items()))
        )
        lines = data.read_bytes().splitlines()
        parsed = [orjson.loads(line) for line in lines]
        models = {t: get_fhir_model_class(t) for t in mix}
        pack = load_rule_pack()

        def parse_all() -> None:
            for line in lines:
                orjson.loads(line)

        def validate_all() -> None:
            for resource in parsed:
                models[resource["resourceType"]].model_validate(resource)

        def import_all() -> None:
            engine = open_store(f"sqlite:///{Path(folder) / 'bench.db'}")
            summary = IngestPipeline(engine, pack, "bench", 16 << 20).run([data])
            assert summary.total("quarantined") == 0, summary.problems[:3]
            engine.dispose()

        encounters = [
            (SourceRef("b", "Encounter", r["id"], "h"), r)
            for r in parsed
            if r["resourceType"] == "Encounter"
        ]
        # A patient's responses and instrument totals are mapped together, as the
        # journey update does.
        responses: dict[str, list[tuple[SourceRef, dict[str, Any]]]] = defaultdict(list)
        for r in parsed:
            if r["resourceType"] in ("QuestionnaireResponse", "Observation"):
                responses[r["subject"]["reference"]].append(
                    (SourceRef("b", r["resourceType"], r["id"], "h"), r)
                )
        mapped = len(encounters) + sum(len(v) for v in responses.values())

        def map_all() -> None:
            for ref, resource in encounters:
                map_encounter(resource, ref, pack)
            for group in responses.values():
                map_instrument_responses(group, pack)

        print("Single process, this machine:")
        parse_rate = timed("bare orjson parse", count, parse_all)
        validate_rate = timed("bare fhir.resources R4B validation", count, validate_all)
        import_rate = timed("import (read+validate+store+map, SQLite)", count, import_all)
        label = f"mapping alone ({mapped:,} resources)"
        map_rate = timed(label, mapped, map_all)
        print("Ratios:")
        rows = [
            ("import / bare validation", import_rate / validate_rate, "target for later: >= 70%"),
            ("import / bare orjson", import_rate / parse_rate, ""),
            ("bare validation / bare orjson", validate_rate / parse_rate, ""),
            ("mapping alone / bare orjson", map_rate / parse_rate, ""),
            ("mapping alone / 100k per s", map_rate / 100_000, "target for later: >= 100%"),
        ]
        for label, ratio, note in rows:
            print(f"  {label:<32} {ratio:7.1%}   {note}")


if __name__ == "__main__":
    main()
