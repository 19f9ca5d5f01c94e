"""The HTTP policy against faults a real server will not produce on demand (respx)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import respx

from connectors.errors import FatalFhirError, TransientFhirError
from connectors.rest.http import FhirHttp, HttpPolicy, retry_after_seconds

URL = "https://ehr.example/fhir/Patient"
BUNDLE = {"resourceType": "Bundle", "type": "searchset"}


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=True) as mock:
        yield mock


class Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


async def fetch(policy: HttpPolicy | None = None) -> tuple[dict[str, object], FhirHttp, Sleeps]:
    sleeps = Sleeps()
    async with httpx.AsyncClient() as client:
        http = FhirHttp(client, policy or HttpPolicy(max_attempts=4), sleep=sleeps)
        body = await http.get_json(URL)
    return body, http, sleeps


async def test_503_then_success_is_retried_once(router: respx.MockRouter) -> None:
    router.get(URL).mock(side_effect=[httpx.Response(503), httpx.Response(200, json=BUNDLE)])
    body, http, sleeps = await fetch()
    assert body == BUNDLE
    assert http.retries == 1
    assert len(sleeps) == 1


async def test_429_storm_honours_retry_after(router: respx.MockRouter) -> None:
    storm = [httpx.Response(429, headers={"Retry-After": "7"})] * 3
    router.get(URL).mock(side_effect=[*storm, httpx.Response(200, json=BUNDLE)])
    _, http, sleeps = await fetch()
    assert http.retries == 3
    assert all(seconds >= 7 for seconds in sleeps)


async def test_retry_after_is_capped(router: respx.MockRouter) -> None:
    router.get(URL).mock(
        side_effect=[
            httpx.Response(503, headers={"Retry-After": "86400"}),
            httpx.Response(200, json=BUNDLE),
        ]
    )
    _, _, sleeps = await fetch(HttpPolicy(max_attempts=3, retry_after_cap=60))
    assert sleeps == [60]


async def test_retries_are_bounded(router: respx.MockRouter) -> None:
    route = router.get(URL).mock(return_value=httpx.Response(502))
    with pytest.raises(TransientFhirError) as caught:
        await fetch(HttpPolicy(max_attempts=3))
    assert route.call_count == 3
    assert caught.value.status == 502


async def test_connection_reset_mid_page_is_retried(router: respx.MockRouter) -> None:
    router.get(URL).mock(
        side_effect=[
            httpx.RemoteProtocolError("peer closed connection"),
            httpx.Response(200, json=BUNDLE),
        ]
    )
    body, http, _ = await fetch()
    assert body == BUNDLE
    assert http.retries == 1


async def test_401_that_stays_401_is_not_retried_and_says_why(router: respx.MockRouter) -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "login", "diagnostics": "token expired"}],
    }
    route = router.get(URL).mock(return_value=httpx.Response(401, json=outcome))
    with pytest.raises(FatalFhirError) as caught:
        await fetch()
    assert route.call_count == 1
    assert caught.value.status == 401
    assert "token expired" in str(caught.value)


async def test_page_that_is_not_json_is_fatal(router: respx.MockRouter) -> None:
    router.get(URL).mock(
        return_value=httpx.Response(
            200, text="<html>login</html>", headers={"content-type": "text/html"}
        )
    )
    with pytest.raises(FatalFhirError, match="not JSON"):
        await fetch()


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_seconds("12") == 12
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


async def test_requests_per_second_are_paced(router: respx.MockRouter) -> None:
    router.get(URL).mock(return_value=httpx.Response(200, json=BUNDLE))
    sleeps = Sleeps()
    async with httpx.AsyncClient() as client:
        # A clock that stands still (the fake sleep does not move it, nor does a slow
        # machine): the pacing alone decides the waits.
        http = FhirHttp(client, HttpPolicy(requests_per_second=10), sleep=sleeps, clock=lambda: 0.0)
        for _ in range(5):
            await http.get_json(URL)
    # Five starts at 10 per second: each scheduled 0.1 s after the one before.
    assert sleeps == pytest.approx([0.1, 0.2, 0.3, 0.4])
