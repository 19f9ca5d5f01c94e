"""Import benchmark: how close the import comes to its floors, measured in one run.

Generates N synthetic resources (the demo population, scaled) as one NDJSON
file, then measures on this machine, single process:

  1. bare orjson parse rate           (the JSON floor)
  2. bare fhir.resources R4B validation (the validation floor)
  3. import rate: read + validate + store (SQLite) + map, end to end
  4. mapping-alone rate: the rule pack over already-parsed resources, grouped
     and with the evidence context the journey update gives them (no store),
     best of 7 runs, with the mapping code this process runs (the mypyc build
     when it is current, see mappings/native.py), and the same in a child
     process running the Python sources, for the ratio between them

and prints each with its ratio to the floors. Targets for later issues:
import >= 70% of bare validation; mapping alone >= 100k resources/s per core.

    scripts/bench --resources 20000

`--dump-records FILE` writes every job record mapping alone makes, one JSON line
each, and exits: the tests compare the compiled build's lines with the Python's.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from fhir.resources.R4B import get_fhir_model_class

import mappings
from integration.cli.demo_population import generate
from integration.ingest.pipeline import IngestPipeline
from integration.store.engine import open_store
from mappings.encounter import EncounterContext, map_encounter, referenced_condition_ids
from mappings.evidence import Evidence, read_evidence
from mappings.fhir_values import reference_id
from mappings.model import JobRecord, SourceRef
from mappings.questionnaire_response import map_instrument_responses
from mappings.rulepack import RulePack, load_rule_pack


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


@dataclass
class MappingWork:
    """What the journey update maps, already parsed and grouped as it groups it:
    Conditions read as evidence, each Encounter with its context (the Conditions it
    names, the evidence naming it, its patient's Conditions), and each patient's
    responses and instrument totals together with that patient's Conditions."""

    conditions: list[tuple[str, str | None, dict[str, Any]]]
    encounters: list[tuple[SourceRef, dict[str, Any], str | None]]
    responses: dict[str | None, list[tuple[SourceRef, dict[str, Any]]]]

    @classmethod
    def of(cls, parsed: list[dict[str, Any]]) -> MappingWork:
        def subject(resource: dict[str, Any]) -> str | None:
            return reference_id(resource.get("subject"), "Patient")

        work = cls([], [], defaultdict(list))
        for r in parsed:
            kind = r["resourceType"]
            ref = SourceRef("bench", kind, r["id"], "1")
            if kind == "Condition":
                work.conditions.append((r["id"], subject(r), r))
            elif kind == "Encounter":
                work.encounters.append((ref, r, subject(r)))
            elif kind in ("QuestionnaireResponse", "Observation"):
                work.responses[subject(r)].append((ref, r))
        return work

    @property
    def count(self) -> int:
        return (
            len(self.conditions)
            + len(self.encounters)
            + sum(len(group) for group in self.responses.values())
        )

    def run(self, pack: RulePack) -> list[JobRecord]:
        records: list[JobRecord] = []
        by_id: dict[str, Evidence] = {}
        by_patient: dict[str | None, list[Evidence]] = defaultdict(list)
        naming: dict[str, list[Evidence]] = defaultdict(list)
        for condition_id, patient, content in self.conditions:
            evidence = read_evidence("Condition", condition_id, content)
            if evidence is not None:
                by_id[condition_id] = evidence
                by_patient[patient].append(evidence)
                if evidence.encounter_id:
                    naming[evidence.encounter_id].append(evidence)
        for ref, encounter, patient in self.encounters:
            context = EncounterContext(
                conditions={
                    cid: by_id[cid] for cid in referenced_condition_ids(encounter) if cid in by_id
                },
                linked=naming.get(ref.resource_id, ()),
                history=by_patient.get(patient, ()),
            )
            records.append(map_encounter(encounter, ref, pack, context))
        for patient, group in self.responses.items():
            records.extend(map_instrument_responses(group, pack, by_patient.get(patient, ())))
        return records


def timed(label: str, count: int, run: Any) -> float:
    started = time.perf_counter()
    run()
    seconds = time.perf_counter() - started
    rate = count / seconds
    print(f"  {label:<44} {rate:>12,.0f} resources/s  ({seconds:.2f} s)")
    return rate


def best_mapping_rate(mapping: MappingWork, pack: RulePack, runs: int = 7) -> tuple[float, float]:
    """Resources/s and seconds of the fastest of `runs` rounds (the first also warms the
    pack's decision tables, as a long import would have)."""
    fastest = min(_seconds(lambda: mapping.run(pack)) for _ in range(runs))
    return mapping.count / fastest, fastest


def _seconds(run: Any) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def python_mapping_rate(resources: int) -> float:
    """Mapping alone in a child process running the Python sources."""
    done = subprocess.run(
        [sys.executable, __file__, "--resources", str(resources), "--mapping-rate-only"],
        env={**os.environ, "JOURNEY_PURE_PYTHON": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.split()[-1])


def dump_records(records: list[JobRecord], path: Path) -> None:
    names = [field.name for field in dataclasses.fields(JobRecord)]
    with path.open("wb") as out:
        for record in records:
            row = {name: getattr(record, name) for name in names}
            out.write(orjson.dumps(row, default=repr) + b"\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--resources", type=int, default=20_000, help="how many resources to generate"
    )
    parser.add_argument("--dump-records", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--mapping-rate-only", action="store_true", help=argparse.SUPPRESS)
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

        mapping = MappingWork.of(parsed)
        if args.dump_records:
            dump_records(mapping.run(pack), args.dump_records)
            return
        if args.mapping_rate_only:
            print(best_mapping_rate(mapping, pack)[0])
            return

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

        print(f"Single process, this machine; mapping code: {mappings.NATIVE_BUILD.describe()}")
        parse_rate = timed("bare orjson parse", count, parse_all)
        validate_rate = timed("bare fhir.resources R4B validation", count, validate_all)
        import_rate = timed("import (read+validate+store+map, SQLite)", count, import_all)
        map_rate, seconds = best_mapping_rate(mapping, pack)
        label = f"mapping alone ({mapping.count:,} resources, best of 7)"
        print(f"  {label:<44} {map_rate:>12,.0f} resources/s  ({seconds:.2f} s)")
        python_rate = python_mapping_rate(args.resources)
        label = "mapping alone, Python sources (child process)"
        print(f"  {label:<44} {python_rate:>12,.0f} resources/s")
        print("Ratios:")
        rows = [
            ("import / bare validation", import_rate / validate_rate, "target for later: >= 70%"),
            ("import / bare orjson", import_rate / parse_rate, ""),
            ("bare validation / bare orjson", validate_rate / parse_rate, ""),
            ("mapping alone / bare orjson", map_rate / parse_rate, ""),
            ("mapping alone / as Python", map_rate / python_rate, "the compiled build's gain"),
            ("mapping alone / 100k per s", map_rate / 100_000, "target for later: >= 100%"),
        ]
        for label, ratio, note in rows:
            print(f"  {label:<32} {ratio:7.1%}   {note}")


if __name__ == "__main__":
    main()
