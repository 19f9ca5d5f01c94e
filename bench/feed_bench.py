"""Journey feed benchmark: reading the change log through GET /feed against a bare
keyset read of the same rows, in one run.

Imports the demo population (both sources, N people) into a fresh SQLite store,
refreshes its episodes, then reads every event, 1,000 a page:

  1. bare: SELECT of the feed rows by sequence, rows only (the floor);
  2. ours: GET /feed?limit=1000 through the app (cursor, thin events, orjson),
     in-process over ASGI, and once more with payload=full.

    scripts/bench-feed --people 2000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).parent))
from outcomes_bench import demo_store

from integration.api.app import create_app
from integration.config import Settings
from integration.journey.episodes import refresh_episodes
from integration.store.schema import feed_events
from mappings.rulepack import load_rule_pack

KEY = "bench-feed-key"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--people", type=int, default=2000, help="people in the population")
    args = parser.parse_args()
    pack = load_rule_pack()
    with tempfile.TemporaryDirectory(prefix="journey-feed-bench-") as folder:
        engine = demo_store(folder, args.people, pack)
        refresh_episodes(engine, pack)

        def bare() -> int:
            seen, after = 0, 0
            with engine.connect() as conn:
                while True:
                    rows = conn.execute(
                        select(feed_events)
                        .where(feed_events.c.seq > after)
                        .order_by(feed_events.c.seq)
                        .limit(1000)
                    ).all()
                    if not rows:
                        return seen
                    seen += len(rows)
                    after = rows[-1].seq

        settings = Settings(api_keys=[KEY], database_url=str(engine.url))
        with TestClient(create_app(settings, engine)) as client:

            def ours(payload: str) -> int:
                seen, cursor = 0, None
                while True:
                    params = {"limit": "1000", "payload": payload}
                    if cursor:
                        params["after"] = cursor
                    page = client.get(
                        "/feed", params=params, headers={"Authorization": f"Bearer {KEY}"}
                    ).json()
                    if not page["items"]:
                        return seen
                    seen += len(page["items"])
                    cursor = page["next_cursor"]

            results = []
            for label, run in (
                ("bare keyset SELECT", bare),
                ("GET /feed (thin)", lambda: ours("thin")),
                ("GET /feed (payload=full)", lambda: ours("full")),
            ):
                started = time.perf_counter()
                count = run()
                seconds = time.perf_counter() - started
                results.append((label, count, count / seconds))
        floor = results[0][2]
        print(f"{results[0][1]:,} feed events ({args.people:,} people, demo population)")
        for label, _count, rate in results:
            print(f"  {label:<28} {rate:>12,.0f} events/s  {rate / floor:7.1%} of bare")
        engine.dispose()


if __name__ == "__main__":
    main()
