"""Paged search: next links followed as opaque URLs, rebased, loop-guarded; entries sorted out."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx

from connectors.errors import FatalFhirError
from connectors.rest.http import FhirHttp, HttpPolicy
from connectors.rest.search import SearchPage, rebase, search

BASE = "https://ehr.example/fhir"


def bundle(*entries: dict[str, Any], next_url: str | None = None) -> dict[str, Any]:
    links = [{"relation": "next", "url": next_url}] if next_url else []
    return {"resourceType": "Bundle", "type": "searchset", "link": links, "entry": list(entries)}


def patient(pid: str) -> dict[str, Any]:
    return {"resource": {"resourceType": "Patient", "id": pid}, "search": {"mode": "match"}}


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=True) as mock:
        yield mock


async def pages(params: dict[str, str] | None = None) -> list[SearchPage]:
    async with httpx.AsyncClient() as client:
        http = FhirHttp(client, HttpPolicy(max_attempts=1))
        return [page async for page in search(http, BASE, "Patient", params or {"_count": "2"})]


async def test_next_links_are_followed_until_there_is_none(router: respx.MockRouter) -> None:
    router.get(f"{BASE}/Patient", params={"_count": "2"}).mock(
        return_value=httpx.Response(
            200, json=bundle(patient("a"), patient("b"), next_url=f"{BASE}/Patient?cursor=xyz")
        )
    )
    router.get(f"{BASE}/Patient", params={"cursor": "xyz"}).mock(
        return_value=httpx.Response(200, json=bundle(patient("c")))
    )
    result = await pages()
    assert [[r["id"] for _, r in page.resources] for page in result] == [["a", "b"], ["c"]]


async def test_next_link_on_another_host_is_followed_on_the_base(router: respx.MockRouter) -> None:
    router.get(f"{BASE}/Patient", params={"_count": "2"}).mock(
        return_value=httpx.Response(
            200, json=bundle(patient("a"), next_url="http://internal-node:8080/fhir/Patient?page=2")
        )
    )
    router.get(f"{BASE}/Patient", params={"page": "2"}).mock(
        return_value=httpx.Response(200, json=bundle(patient("b")))
    )
    assert len(await pages()) == 2


async def test_a_next_link_loop_is_stopped(router: respx.MockRouter) -> None:
    router.get(f"{BASE}/Patient", params={"_count": "2"}).mock(
        return_value=httpx.Response(
            200, json=bundle(patient("a"), next_url=f"{BASE}/Patient?page=2")
        )
    )
    router.get(f"{BASE}/Patient", params={"page": "2"}).mock(
        return_value=httpx.Response(
            200, json=bundle(patient("b"), next_url=f"{BASE}/Patient?page=2")
        )
    )
    with pytest.raises(FatalFhirError, match="loop"):
        await pages()


async def test_outcome_include_and_broken_entries_are_sorted_out(router: respx.MockRouter) -> None:
    outcome = {
        "resource": {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "warning",
                    "code": "not-supported",
                    "diagnostics": "parameter patient ignored",
                }
            ],
        },
        "search": {"mode": "outcome"},
    }
    include = {
        "resource": {"resourceType": "Organization", "id": "o"},
        "search": {"mode": "include"},
    }
    wrong = {"resource": {"resourceType": "Encounter", "id": "e"}}
    router.get(f"{BASE}/Patient").mock(
        return_value=httpx.Response(
            200, json=bundle(patient("a"), outcome, include, wrong, {"fullUrl": "x"})
        )
    )
    [page] = await pages()
    assert [r["id"] for _, r in page.resources] == ["a"]
    assert page.warnings == ["parameter patient ignored"]
    assert [index for index, _ in page.broken] == [3, 4]


async def test_a_page_that_is_not_a_bundle_is_fatal(router: respx.MockRouter) -> None:
    router.get(f"{BASE}/Patient").mock(
        return_value=httpx.Response(200, json={"resourceType": "Patient", "id": "x"})
    )
    with pytest.raises(FatalFhirError, match="not a Bundle"):
        await pages()


def test_rebase_resolves_relative_and_foreign_links() -> None:
    assert rebase("Patient?page=2", BASE) == f"{BASE}/Patient?page=2"
    assert (
        rebase("https://other:9/fhir/Patient?p=1", BASE) == "https://ehr.example/fhir/Patient?p=1"
    )
    assert rebase(f"{BASE}/Patient?p=1", BASE) == f"{BASE}/Patient?p=1"
