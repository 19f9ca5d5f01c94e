"""Bearer tokens and scopes, without a server: what a token must be to be accepted,
what its scopes permit, and how the issuer's keys are kept through an outage."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import httpx
import jwt
import orjson
import pytest

from integration.access.oauth import (
    MIN_FETCH_GAP_SECONDS,
    IssuerKeysUnavailable,
    JwksCache,
    OAuthConfig,
    TokenRejected,
    TokenVerifier,
)
from integration.access.scopes import Permission, permissions
from tests.access.tokens import AUDIENCE, ISSUER, Issuer

CONFIG = OAuthConfig(ISSUER, AUDIENCE, "https://issuer.test/jwks", refresh_seconds=300)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Jwks:
    """The issuer's JWKS endpoint: counts fetches, and can be down."""

    def __init__(self, issuer: Issuer) -> None:
        self.issuer = issuer
        self.down = False
        self.fetches = 0

    def __call__(self, url: str) -> Any:
        self.fetches += 1
        if self.down:
            raise httpx.ConnectError("connection refused")
        return self.issuer.jwks()


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    made = Issuer()
    made.add_key("k1")
    made.add_key("k2")
    return made


def verifier(issuer: Issuer, clock: Clock | None = None, jwks: Jwks | None = None) -> TokenVerifier:
    fetch = jwks or Jwks(issuer)
    return TokenVerifier(CONFIG, JwksCache(CONFIG, fetch, clock or Clock()))


def test_a_good_token_names_its_client_and_permissions(issuer: Issuer) -> None:
    caller = verifier(issuer).principal(issuer.token(scope="journey/people.read system/*.rs"))
    assert caller.client_id == "care-app"
    assert caller.how == "oauth"
    assert caller.permissions == {Permission.READ_PEOPLE, Permission.READ_FEED}
    assert caller.patient is None


def _part(value: dict[str, Any] | bytes) -> str:
    raw = value if isinstance(value, bytes) else orjson.dumps(value)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unsigned(claims: dict[str, Any]) -> str:
    return f"{_part({'alg': 'none', 'typ': 'JWT', 'kid': 'k1'})}.{_part(claims)}."


def _hmac_signed(claims: dict[str, Any], secret: bytes) -> str:
    signed = f"{_part({'alg': 'HS256', 'typ': 'JWT', 'kid': 'k1'})}.{_part(claims)}"
    mac = hmac.new(secret, signed.encode(), hashlib.sha256).digest()
    return f"{signed}.{_part(mac)}"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda i: i.token(exp=int(time.time()) - 120), "the token has expired"),
        (lambda i: i.token(nbf=int(time.time()) + 600), "the token is not valid yet"),
        (lambda i: i.token(aud="another-api"), "the token is for another audience"),
        (lambda i: i.token(iss="https://evil.test"), "the token is from another issuer"),
        (lambda i: i.token(exp=None), "the token lacks a required claim"),
        (
            lambda i: _unsigned({"iss": ISSUER, "aud": AUDIENCE, "exp": 2**31, "client_id": "x"}),
            "the token's algorithm is not accepted",
        ),
        (
            # The classic confusion: HS256 "signed" with the issuer's public key.
            lambda i: _hmac_signed(
                {"iss": ISSUER, "aud": AUDIENCE, "exp": 2**31, "client_id": "x"},
                i.public_pem("k1"),
            ),
            "the token's algorithm is not accepted",
        ),
        (lambda i: i.token()[:-6] + "AAAAAA", "the token's signature does not verify"),
        (lambda i: i.token(kid="k1").replace(".", ".", 1), None),
        (lambda i: "not.a.jwt", "the bearer token is neither an API key nor a JWT"),
    ],
)
def test_a_token_that_is_not_valid_here_is_rejected_with_its_reason(
    issuer: Issuer, make: Any, reason: str | None
) -> None:
    token = make(issuer)
    check = verifier(issuer)
    if reason is None:  # a control: the unchanged token passes
        check.principal(token)
        return
    with pytest.raises(TokenRejected) as rejected:
        check.principal(token)
    assert str(rejected.value).startswith(reason)


def test_a_key_rotation_is_picked_up_on_the_first_token_with_the_new_key(issuer: Issuer) -> None:
    published = Issuer(keys={"k1": issuer.keys["k1"]})
    jwks = Jwks(published)
    clock = Clock()
    check = verifier(issuer, clock, jwks)
    check.principal(issuer.token(kid="k1"))
    assert jwks.fetches == 1
    published.keys["k2"] = issuer.keys["k2"]  # the issuer rotates
    clock.now += MIN_FETCH_GAP_SECONDS
    assert check.principal(issuer.token(kid="k2")).client_id == "care-app"
    assert jwks.fetches == 2
    # A key id the issuer never published is refused, without a fetch per token.
    for _ in range(5):
        with pytest.raises(TokenRejected, match="a key the issuer does not publish"):
            check.principal(jwt.encode({"x": 1}, issuer.keys["k1"], "RS256", {"kid": "k9"}))
    assert jwks.fetches <= 3


def test_known_keys_keep_working_through_a_30_minute_issuer_outage(issuer: Issuer) -> None:
    jwks = Jwks(issuer)
    clock = Clock()
    check = verifier(issuer, clock, jwks)
    check.principal(issuer.token())
    jwks.down = True
    for _ in range(6):  # every 5 minutes for 30 minutes: refreshes fail, tokens pass
        clock.now += 300
        assert check.principal(issuer.token()).client_id == "care-app"
    assert jwks.fetches == 7
    # Past max_stale_hours (24 h) the known keys are too old to trust.
    clock.now += 24 * 3600
    with pytest.raises(IssuerKeysUnavailable):
        check.principal(issuer.token())


def test_an_issuer_down_from_the_start_is_unavailable_not_a_bad_token(issuer: Issuer) -> None:
    jwks = Jwks(issuer)
    jwks.down = True
    with pytest.raises(IssuerKeysUnavailable):
        verifier(issuer, jwks=jwks).principal(issuer.token())


@pytest.mark.parametrize(
    ("scopes", "granted", "patient_only"),
    [
        (["system/*.rs"], {"journey/people.read", "journey/feed.read"}, False),
        (["system/Patient.read"], {"journey/people.read", "journey/feed.read"}, False),
        (["user/*.rs"], {"journey/people.read"}, False),
        (["patient/*.rs"], {"journey/people.read"}, True),
        (["patient/Patient.rs", "user/Patient.rs"], {"journey/people.read"}, False),
        (["system/Observation.rs"], set(), False),
        (["system/Subscription.cruds"], {"journey/subscriptions.manage"}, False),
        (["patient/Subscription.c"], set(), False),
        (["system/Patient.s"], set(), False),
        (["journey/sync.start", "nonsense", "journey/everything"], {"journey/sync.start"}, False),
    ],
)
def test_smart_and_journey_scopes_grant_what_they_say(
    scopes: list[str], granted: set[str], patient_only: bool
) -> None:
    found, limited = permissions(scopes)
    assert {p.value for p in found} == granted
    assert limited is patient_only


def test_a_patient_level_token_reads_only_its_patient(issuer: Issuer) -> None:
    check = verifier(issuer)
    caller = check.principal(issuer.token(scope="patient/*.rs", patient="person-1"))
    assert caller.patient == "person-1"
    assert caller.may(Permission.READ_PEOPLE)
    # Without a patient in context, patient-level scopes read nobody.
    nobody = check.principal(issuer.token(scope="patient/*.rs"))
    assert not nobody.may(Permission.READ_PEOPLE)


def test_a_client_past_its_burst_waits_for_the_rate_and_others_do_not() -> None:
    from integration.access.rate_limit import RateLimiter

    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=3, clock=clock)
    assert [limiter.wait_seconds("app") for _ in range(3)] == [0, 0, 0]
    assert limiter.wait_seconds("app") == 1  # one a second refills
    assert limiter.wait_seconds("other-app") == 0
    clock.now += 1.0
    assert limiter.wait_seconds("app") == 0
    assert limiter.wait_seconds("app") == 1
    assert RateLimiter(per_minute=0, burst=1).wait_seconds("app") == 0  # off
