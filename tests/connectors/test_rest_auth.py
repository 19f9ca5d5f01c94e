"""OAuth flows against faults (respx): caching, refresh before expiry, one re-auth on 401."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs

import httpx
import jwt
import pytest
import respx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from connectors.errors import FatalFhirError
from connectors.rest.auth import ASSERTION_TYPE, ClientCredentials, SmartBackendServices
from connectors.rest.http import FhirHttp, HttpPolicy

BASE = "https://ehr.example/fhir"
TOKEN_URL = "https://auth.example/token"
BUNDLE = {"resourceType": "Bundle", "type": "searchset"}


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=True) as mock:
        mock.get(f"{BASE}/.well-known/smart-configuration").mock(
            return_value=httpx.Response(200, json={"token_endpoint": TOKEN_URL})
        )
        yield mock


def tokens(*names: str, expires_in: int = 3600) -> list[httpx.Response]:
    return [httpx.Response(200, json={"access_token": n, "expires_in": expires_in}) for n in names]


async def get(auth: httpx.Auth, times: int = 1) -> list[dict[str, object]]:
    async with httpx.AsyncClient(auth=auth) as client:
        http = FhirHttp(client, HttpPolicy(max_attempts=1))
        return [await http.get_json(f"{BASE}/Patient") for _ in range(times)]


async def test_token_is_discovered_fetched_once_and_cached(router: respx.MockRouter) -> None:
    token_route = router.post(TOKEN_URL).mock(side_effect=tokens("t1"))
    api = router.get(f"{BASE}/Patient").mock(return_value=httpx.Response(200, json=BUNDLE))
    await get(ClientCredentials(BASE, "journey", "s3cret", "system/*.read"), times=3)
    assert token_route.call_count == 1
    assert all(call.request.headers["Authorization"] == "Bearer t1" for call in api.calls)
    form = parse_qs(token_route.calls[0].request.content.decode())
    assert form == {"grant_type": ["client_credentials"], "scope": ["system/*.read"]}
    assert token_route.calls[0].request.headers["Authorization"].startswith("Basic ")


async def test_token_is_refreshed_before_it_expires(router: respx.MockRouter) -> None:
    clock = Clock()
    token_route = router.post(TOKEN_URL).mock(side_effect=tokens("t1", "t2", expires_in=300))
    router.get(f"{BASE}/Patient").mock(return_value=httpx.Response(200, json=BUNDLE))
    auth = ClientCredentials(BASE, "journey", "s3cret", "system/*.read", clock=clock)
    async with httpx.AsyncClient(auth=auth) as client:
        await client.get(f"{BASE}/Patient")
        clock.now += 250  # inside the refresh margin of a 300 s token
        response = await client.get(f"{BASE}/Patient")
    assert token_route.call_count == 2
    assert response.request.headers["Authorization"] == "Bearer t2"


async def test_token_that_expires_mid_sync_is_replaced_once(router: respx.MockRouter) -> None:
    router.post(TOKEN_URL).mock(side_effect=tokens("old", "new"))
    api = router.get(f"{BASE}/Patient").mock(
        side_effect=lambda request: httpx.Response(
            200 if request.headers["Authorization"] == "Bearer new" else 401, json=BUNDLE
        )
    )
    assert await get(ClientCredentials(BASE, "journey", "s3cret", "system/*.read")) == [BUNDLE]
    assert api.call_count == 2


async def test_a_401_that_stays_401_is_one_clear_error_not_a_loop(router: respx.MockRouter) -> None:
    token_route = router.post(TOKEN_URL).mock(side_effect=tokens("a", "b", "c"))
    api = router.get(f"{BASE}/Patient").mock(return_value=httpx.Response(401))
    with pytest.raises(FatalFhirError) as caught:
        await get(ClientCredentials(BASE, "journey", "s3cret", "system/*.read"))
    assert caught.value.status == 401
    assert (api.call_count, token_route.call_count) == (2, 2)


async def test_a_refused_token_request_names_the_endpoint(router: respx.MockRouter) -> None:
    router.post(TOKEN_URL).mock(
        return_value=httpx.Response(
            401, json={"error": "invalid_client", "error_description": "bad secret"}
        )
    )
    with pytest.raises(FatalFhirError, match="bad secret") as caught:
        await get(ClientCredentials(BASE, "journey", "wrong", "system/*.read"))
    assert caught.value.url == TOKEN_URL


@pytest.mark.parametrize("algorithm", ["RS384", "ES384"])
async def test_smart_backend_sends_a_signed_assertion(
    router: respx.MockRouter, algorithm: str
) -> None:
    key = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if algorithm == "RS384"
        else ec.generate_private_key(ec.SECP384R1())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    token_route = router.post(TOKEN_URL).mock(side_effect=tokens("t1"))
    router.get(f"{BASE}/Patient").mock(return_value=httpx.Response(200, json=BUNDLE))
    await get(
        SmartBackendServices(
            BASE, "journey", pem, "system/*.read", algorithm=algorithm, key_id="k1"
        )
    )
    form = parse_qs(token_route.calls[0].request.content.decode())
    assert form["client_assertion_type"] == [ASSERTION_TYPE]
    assertion = form["client_assertion"][0]
    assert jwt.get_unverified_header(assertion) == {"alg": algorithm, "kid": "k1", "typ": "JWT"}
    claims = jwt.decode(assertion, key.public_key(), algorithms=[algorithm], audience=TOKEN_URL)
    assert claims["iss"] == claims["sub"] == "journey"
    assert claims["exp"] - claims.get("iat", claims["exp"] - 240) <= 300
