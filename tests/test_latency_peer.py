"""The pull benchmark's latency-bound peer answers what `journey sync` asks, correctly:
a wrong page there would make the benchmark's counts, not only its times, wrong."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from bench.latency_peer import Peer, build
from connectors.rest.capabilities import parse_capabilities

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def get(peer: Peer, target: str) -> tuple[int, dict[str, Any]]:
    status, body = peer.answer(target, "peer.test")
    return status, orjson.loads(body)


def walk(peer: Peer, target: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    url: str | None = target
    while url is not None:
        status, bundle = get(peer, url.removeprefix("http://peer.test"))
        assert status == 200
        found += [entry["resource"] for entry in bundle["entry"]]
        url = next((x["url"] for x in bundle["link"] if x["relation"] == "next"), None)
    return found


def test_the_peer_declares_search_with_last_updated_and_no_history() -> None:
    capabilities = parse_capabilities(get(Peer(build(4, NOW), 0), "/fhir/metadata")[1])
    assert capabilities.supports_type("Patient")
    assert capabilities.supports_type("Encounter")
    assert capabilities.supports_param("Encounter", "_lastUpdated")
    assert not capabilities.supports_history("Patient")


def test_windows_sorting_and_next_links_cover_every_resource_once() -> None:
    held = build(50, NOW)
    peer = Peer(held, 0)
    everything = walk(peer, "/fhir/Patient?_count=7")
    assert len(everything) == 50 == len({p["id"] for p in everything})
    middle = held["Patient"].moments[20].isoformat().replace("+00:00", "Z")
    early = walk(peer, f"/fhir/Patient?_count=7&_lastUpdated=lt{middle}")
    late = walk(peer, f"/fhir/Patient?_count=7&_lastUpdated=ge{middle}")
    assert (len(early), len(late)) == (20, 30)
    assert {p["id"] for p in early + late} == {p["id"] for p in everything}
    _, newest = get(peer, "/fhir/Patient?_count=1&_sort=-_lastUpdated")
    _, oldest = get(peer, "/fhir/Patient?_count=1&_sort=_lastUpdated")
    assert newest["total"] == oldest["total"] == 50
    assert (
        newest["entry"][0]["resource"]["meta"]["lastUpdated"]
        > (oldest["entry"][0]["resource"]["meta"]["lastUpdated"])
    )
    assert get(peer, "/fhir/Patient?name=x")[0] == 400
    assert get(peer, "/fhir/Observation")[0] == 404
