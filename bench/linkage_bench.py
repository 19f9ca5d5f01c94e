"""Linkage benchmark: how well and how fast Patients of two sources become people.

On a labelled linkage set (`bench/linkage_population.py`: a provider and a payer
with no identifier system in common, the payer's records with typos, nicknames,
swapped dates, gaps, marriages, moves, and twins, fathers and sons, families
sharing a phone), linked by the real identity code into a fresh SQLite store:

  1. precision and recall of the people formed, at the pack's thresholds;
  2. per auto-link threshold: precision, recall and review-queue size of the
     pairwise verdicts (what the thresholds trade);
  3. linking throughput in a batch import (Patients/s, one process);
  4. latency of linking one new Patient (one transaction each, as a push does)
     against the store, p50 and p99; with --store-size, against a bigger store.

    scripts/bench-linkage --people 5000
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, select

from bench.linkage_population import (
    PAYER,
    PROVIDER,
    LinkageSet,
    cross_source_pairs,
    generate,
    physio_claim,
    physio_visit,
)
from integration.ingest.pipeline import IngestPipeline
from integration.journey.identity import SourcePatient, link_patients
from integration.store import queries
from integration.store.engine import open_store
from integration.store.schema import patient_matches, person_links
from integration.store.wal import WalCheckpointer
from mappings.rulepack import IdentityRules, load_rule_pack

Pair = tuple[tuple[str, str], tuple[str, str]]


def link_all(
    engine: Engine, source: str, patients: Sequence[dict[str, Any]], rules: IdentityRules
) -> float:
    """Link in batches of 500, as the journey update does; returns seconds."""
    started = time.perf_counter()
    for i in range(0, len(patients), 500):
        batch = [SourcePatient(source, p["id"], p) for p in patients[i : i + 500]]
        with engine.begin() as conn:
            link_patients(conn, batch, "2026-12-01T00:00:00Z", rules)
    return time.perf_counter() - started


def people_pairs(engine: Engine) -> set[Pair]:
    with engine.connect() as conn:
        rows = conn.execute(select(person_links)).all()
    return cross_source_pairs(((row.source, row.patient_id), row.person_id) for row in rows)


def scored_pairs(engine: Engine) -> list[tuple[Pair, float, bool]]:
    """Every stored probabilistic verdict: the pair (provider first), its score, and
    whether a veto keeps it from auto-linking."""
    with engine.connect() as conn:
        rows = conn.execute(select(patient_matches).where(patient_matches.c.score.is_not(None)))
        found = []
        for row in rows:
            a, b = (row.a_source, row.a_patient), (row.b_source, row.b_patient)
            pair = (a, b) if a[0] == PROVIDER else (b, a)
            found.append((pair, float(row.score), "never automatically" in row.reason))
    return found


def rates(predicted: set[Pair], truth: set[Pair]) -> tuple[float, float]:
    hits = len(predicted & truth)
    precision = hits / len(predicted) if predicted else 1.0
    return precision, hits / len(truth)


def events(data: LinkageSet, folder: Path) -> None:
    """The duplicate-event rate: every provider patient has a physiotherapy visit, and
    the payer a claim for it (for its members the provider also saw: the same day),
    imported end to end into a fresh store."""
    visits = [
        physio_visit(f"v-{p['id']}", p["id"], _day(data.truth[(PROVIDER, p["id"])]))
        for p in data.provider
    ]
    claims = [
        physio_claim(f"c-{p['id']}", p["id"], _day(data.truth[(PAYER, p["id"])]))
        for p in data.payer
    ]
    files = {}
    for source, resources in (
        (PROVIDER, [*data.provider, *visits]),
        (PAYER, [*data.payer, *claims]),
    ):
        files[source] = folder / f"{source}.ndjson"
        files[source].write_bytes(b"\n".join(orjson.dumps(r) for r in resources) + b"\n")
    engine = open_store(f"sqlite:///{folder / 'events.db'}")
    pack = load_rule_pack()
    for source, path in files.items():
        IngestPipeline(engine, pack, source, 16 << 20).run([path])
    twice = joined = wrong = split = 0
    with engine.connect() as conn:
        people = queries.list_people(conn, 1_000_000)
        for found in people:
            items = queries.journey(conn, found["id"], 10_000)
            days = Counter((r["occurred_start"] or "")[:10] for r in items)
            twice += sum(n - 1 for n in days.values() if n > 1)
            for item in items:
                for other in item["joined"]:
                    joined += 1
                    mine = data.truth[(item["source"]["source"], item["source"]["resource_id"][2:])]
                    theirs = data.truth[(other["source"], other["resource_id"][2:])]
                    wrong += mine != theirs
    split = len(data.true_pairs() - people_pairs(engine))
    print(
        f"Events: {len(visits):,} visits, {len(claims):,} claims, {joined:,} joined; "
        f"shown twice in one journey: {twice} (target 0); joined across real people: {wrong}; "
        f"in two journeys because the two Patients were not linked: {split}"
    )
    engine.dispose()


def _day(person: int) -> str:
    return (date(2026, 1, 1) + timedelta(days=person % 300)).isoformat()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--people", type=int, default=5000, help="people in the population")
    parser.add_argument(
        "--store-size", type=int, default=0, help="also time one Patient against this many"
    )
    args = parser.parse_args()
    rules = load_rule_pack().identity
    data: LinkageSet = generate(args.people)
    truth = data.true_pairs()
    with tempfile.TemporaryDirectory(prefix="journey-linkage-") as folder:
        engine = open_store(f"sqlite:///{Path(folder) / 'linkage.db'}")
        seconds = link_all(engine, PROVIDER, data.provider, rules)
        seconds += link_all(engine, PAYER, data.payer, rules)
        patients = len(data.provider) + len(data.payer)
        print(
            f"{len(data.provider):,} provider and {len(data.payer):,} payer Patients, "
            f"{len(truth):,} true pairs, no identifier in common"
        )
        precision, recall = rates(people_pairs(engine), truth)
        auto_at = rules.score_needed(rules.auto_link_probability, patients)
        review_at = rules.score_needed(rules.review_probability, patients)
        print(
            f"People formed (auto-link at match probability {rules.auto_link_probability}, "
            f"score {auto_at:.1f} in a store this size): precision {precision:.4f}, "
            f"recall {recall:.4f}   targets: >= 0.995, >= 0.95"
        )
        scored = scored_pairs(engine)
        print("Per auto-link score (pairwise verdicts, before people are formed):")
        print(f"  {'score':>5} {'precision':>9} {'recall':>7} {'review queue':>12}")
        for threshold in range(int(review_at), 42, 2):
            auto = {p for p, score, vetoed in scored if score >= threshold and not vetoed}
            review = {p for p, score, _ in scored if score >= review_at} - auto
            p, r = rates(auto, truth)
            mark = "  <- the pack's, here" if threshold <= auto_at < threshold + 2 else ""
            print(f"  {threshold:>5} {p:>9.4f} {r:>7.4f} {len(review):>12,}{mark}")
        print(
            f"Linking throughput, batch import: {patients / seconds:,.0f} Patients/s "
            f"({seconds:.1f} s, one process)   target: >= 5,000"
        )
        events(data, Path(folder))
        stores = [("this store", patients)]
        if args.store_size > patients:
            extra = generate(args.store_size - patients, seed=99)
            filler = [{**p, "id": f"fill-{p['id']}"} for p in extra.provider + extra.payer]
            filled = link_all(engine, "filler", filler[: args.store_size - patients], rules)
            print(f"  (filled the store to {args.store_size:,} Patients in {filled:.0f} s)")
            stores = [(f"{args.store_size:,} Patients", args.store_size)]
        newcomers = generate(400, seed=5).payer[:200]
        # As `journey serve` runs: SQLite's log checkpointed in the background.
        checkpointer = WalCheckpointer(engine)
        checkpointer.start()
        for label, _ in stores:
            latencies = []
            for patient in newcomers:
                started = time.perf_counter()
                with engine.begin() as conn:
                    link_patients(
                        conn,
                        [SourcePatient("pushed", patient["id"], patient)],
                        "2026-12-01T00:00:00Z",
                        rules,
                    )
                latencies.append((time.perf_counter() - started) * 1000)
            latencies.sort()
            p99 = latencies[int(len(latencies) * 0.99) - 1]
            print(
                f"One pushed Patient against {label}: p50 {statistics.median(latencies):.1f} ms, "
                f"p99 {p99:.1f} ms   target at 1,000,000: p99 < 20 ms"
            )
        checkpointer.stop()
        engine.dispose()


if __name__ == "__main__":
    main()
