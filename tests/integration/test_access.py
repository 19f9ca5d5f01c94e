"""Who may see whom, tried as an attacker would: every route refuses a client without
its scope, tokens from a local OAuth issuer (a JWKS server on loopback) are checked
to the letter, [[clients]] keys are held by hash or by reference and rotate without a
restart, and a patient-level token cannot tell other people from nobody."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from integration.access.scopes import Permission
from integration.api.app import create_app
from integration.config import load_settings
from tests.access.jwks_server import JwksServer
from tests.access.tokens import AUDIENCE, ISSUER, Issuer
from tests.conftest import ImportFn, encounter, patient, write_ndjson

pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
ADMIN_KEY = "admin-key"
PUBLIC = {("get", "/healthz"), ("get", "/fhir/metadata")}


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    made = Issuer()
    made.add_key("k1")
    return made


@pytest.fixture
def jwks(issuer: Issuer) -> Iterator[JwksServer]:
    with JwksServer(issuer) as running:
        yield running


@pytest.fixture
def config(tmp_path: Path) -> Path:
    key_file = tmp_path / "reader.key"
    key_file.write_text("reader-key-1\n", encoding="utf-8")
    digest = hashlib.sha256(b"syncer-key").hexdigest()
    path = tmp_path / "journey.toml"
    path.write_text(
        "[[clients]]\n"
        'id = "reader"\nscopes = ["journey/people.read"]\n'
        f'key_file = "{key_file}"\n\n'
        "[[clients]]\n"
        'id = "syncer"\nscopes = ["journey/sync.start", "journey/operations.read"]\n'
        f'key_sha256 = "{digest}"\n',
        encoding="utf-8",
    )
    return path


@pytest.fixture
def client(engine: Engine, jwks: JwksServer, config: Path) -> Iterator[TestClient]:
    settings = load_settings(
        config,
        database_url=str(engine.url),
        api_keys=[ADMIN_KEY],
        oauth_issuer=ISSUER,
        oauth_audience=AUDIENCE,
        oauth_jwks_url=jwks.url,
    )
    with TestClient(create_app(settings, engine)) as test_client:
        yield test_client


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def operations(client: TestClient) -> list[tuple[str, str, list[str]]]:
    """Every protected operation with the scopes the document says it needs (none
    named: a /fhir journey view, which names them in its 403)."""
    found = []
    for path, item in client.get("/openapi.json").json()["paths"].items():
        for method, operation in item.items():
            if (method, path) in PUBLIC:
                continue
            needed = [s for r in operation.get("security", []) for s in next(iter(r.values()))]
            found.append((method, path, needed))
    return found


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def test_every_route_refuses_a_token_without_its_scope(client: TestClient, issuer: Issuer) -> None:
    everything = {p.value for p in Permission}
    checked = 0
    for method, path, needed in operations(client):
        for scope in needed:
            token = issuer.token(scope=" ".join(sorted(everything - {scope})))
            answer = client.request(method, concrete(path), headers=bearer(token), json={})
            assert answer.status_code == 403, f"{method} {path} without {scope}"
            assert answer.json()["detail"] == f"this client lacks the scope {scope}"
            assert f'scope="{scope}"' in answer.headers["www-authenticate"]
            checked += 1
    assert checked >= 25  # every API operation outside /fhir


def test_every_protected_route_refuses_no_credential_and_a_bad_one(
    client: TestClient, issuer: Issuer
) -> None:
    stranger = Issuer()
    stranger.add_key("k1")  # same key id, another key: a forged token
    for method, path, _ in operations(client):
        for headers in ({}, bearer("not-a-key"), bearer(stranger.token(scope="system/*.rs"))):
            answer = client.request(method, concrete(path), headers=headers, json={})
            assert answer.status_code == 401, f"{method} {path} with {headers}"


def test_journey_views_on_fhir_check_scopes_as_operation_outcomes(
    client: TestClient, issuer: Issuer
) -> None:
    feed_only = issuer.token(scope="journey/feed.read")
    for path in ("/fhir/EpisodeOfCare?patient=1", "/fhir/Subscription", "/fhir/EpisodeOfCare/1"):
        answer = client.get(path, headers=bearer(feed_only))
        assert answer.status_code == 403, path
        assert answer.json()["resourceType"] == "OperationOutcome"
    expired = issuer.token(exp=int(time.time()) - 600)
    answer = client.get("/fhir/Subscription", headers=bearer(expired))
    assert answer.status_code == 401
    assert answer.json()["issue"][0]["diagnostics"] == "the token has expired"


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"exp": int(time.time()) - 600}, "the token has expired"),
        ({"nbf": int(time.time()) + 600}, "the token is not valid yet"),
        ({"aud": "payer-portal"}, "the token is for another audience"),
        ({"iss": "https://evil.test"}, "the token is from another issuer"),
    ],
)
def test_a_bad_token_is_a_401_problem_naming_why_and_nothing_of_it(
    client: TestClient, issuer: Issuer, claims: dict[str, Any], reason: str
) -> None:
    token = issuer.token(**claims)
    answer = client.get("/people", headers=bearer(token))
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["detail"] == reason
    assert 'error="invalid_token"' in answer.headers["www-authenticate"]
    assert token not in answer.text


def test_a_replayed_token_works_until_it_expires_and_never_after(
    client: TestClient, issuer: Issuer
) -> None:
    token = issuer.token()
    assert client.get("/people", headers=bearer(token)).status_code == 200
    assert client.get("/people", headers=bearer(token)).status_code == 200
    # The same token once past its expiry and the 30 s leeway (made so, not waited for).
    stale = issuer.token(iat=int(time.time()) - 400, exp=int(time.time()) - 31)
    assert client.get("/people", headers=bearer(stale)).status_code == 401


def test_the_issuer_down_from_the_start_is_503_not_a_bad_token(
    client: TestClient, issuer: Issuer, jwks: JwksServer
) -> None:
    jwks.down = True
    answer = client.get("/people", headers=bearer(issuer.token()))
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "30"
    jwks.down = False


def test_known_keys_keep_working_while_the_issuer_is_down(
    client: TestClient, issuer: Issuer, jwks: JwksServer
) -> None:
    assert client.get("/people", headers=bearer(issuer.token())).status_code == 200
    jwks.down = True
    assert client.get("/people", headers=bearer(issuer.token())).status_code == 200


def test_configured_clients_have_their_scopes_and_keys_rotate_without_restart(
    client: TestClient, config: Path
) -> None:
    assert client.get("/people", headers=bearer("reader-key-1")).status_code == 200
    assert client.get("/status", headers=bearer("reader-key-1")).status_code == 403
    assert client.get("/status", headers=bearer("syncer-key")).status_code == 200
    assert client.get("/people", headers=bearer("syncer-key")).status_code == 403
    # The key file is rewritten: the old key stops, the new one works, no restart.
    (config.parent / "reader.key").write_text("reader-key-2\n", encoding="utf-8")
    time.sleep(1.1)
    assert client.get("/people", headers=bearer("reader-key-1")).status_code == 401
    assert client.get("/people", headers=bearer("reader-key-2")).status_code == 200
    # A client added to the config file counts at once too.
    with config.open("a", encoding="utf-8") as file:
        digest = hashlib.sha256(b"feed-key").hexdigest()
        file.write('\n[[clients]]\nid = "feeder"\nscopes = ["journey/feed.read"]\n')
        file.write(f'key_sha256 = "{digest}"\n')
    time.sleep(1.1)
    assert client.get("/feed", headers=bearer("feed-key")).status_code == 200


def test_a_patient_level_token_cannot_tell_other_people_from_nobody(
    client: TestClient, issuer: Issuer, tmp_path: Path, import_files: ImportFn
) -> None:
    import_files(
        write_ndjson(
            tmp_path / "a.ndjson",
            patient("p1"),
            encounter("e1", "p1"),
            patient("p2", name=[{"family": "Other", "given": ["Person"]}], birthDate="1955-05-05"),
            encounter("e2", "p2"),
        ),
        source="clinic",
    )
    people = client.get("/people", headers=bearer(ADMIN_KEY)).json()["items"]
    mine, other = people[0]["id"], people[1]["id"]
    token = issuer.token(scope="patient/*.rs", patient=mine)
    assert client.get(f"/people/{mine}/journey", headers=bearer(token)).status_code == 200
    listed = client.get("/people", headers=bearer(token)).json()["items"]
    assert [p["id"] for p in listed] == [mine]
    for route in ("", "/journey", "/episodes"):
        theirs = client.get(f"/people/{other}{route}", headers=bearer(token))
        nobody = client.get(f"/people/no-such-person{route}", headers=bearer(token))
        assert theirs.status_code == nobody.status_code == 404, route
        assert theirs.json()["detail"].replace(other, "X") == nobody.json()["detail"].replace(
            "no-such-person", "X"
        )
    # Link history names the other side of each pair: refused to a patient-level
    # client, also for its own person.
    for whom in (mine, other, "no-such-person"):
        assert client.get(f"/people/{whom}/history", headers=bearer(token)).status_code == 403
    episodes = client.get("/fhir/EpisodeOfCare", params={"patient": other}, headers=bearer(token))
    assert episodes.json()["total"] == 0
    assert client.get("/metrics/outcomes", headers=bearer(token)).status_code == 403
    assert client.get("/feed", headers=bearer(token)).status_code == 403


def test_rate_limits_answer_429_with_retry_after_per_client_and_cors_is_off(
    engine: Engine, issuer: Issuer
) -> None:
    settings = load_settings(
        None,
        database_url=str(engine.url),
        api_keys=[ADMIN_KEY, "other-key"],
        rate_limit_per_minute=1,  # no token comes back while the test runs
        rate_limit_burst=2,
    )
    with TestClient(create_app(settings, engine)) as client:
        assert [client.get("/people", headers=bearer(ADMIN_KEY)).status_code for _ in range(2)] == [
            200,
            200,
        ]
        throttled = client.get("/people", headers=bearer(ADMIN_KEY))
        assert throttled.status_code == 429
        assert throttled.headers["content-type"] == "application/problem+json"
        assert int(throttled.headers["retry-after"]) >= 1
        assert client.get("/people", headers=bearer("other-key")).status_code == 200
        fhir = client.get("/fhir/EpisodeOfCare", params={"patient": "x"}, headers=bearer(ADMIN_KEY))
        assert fhir.status_code == 429
        assert fhir.json()["resourceType"] == "OperationOutcome"
        # CORS is off unless origins are configured: no browser may read answers.
        preflight = client.options(
            "/people",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"},
        )
        assert "access-control-allow-origin" not in preflight.headers


def test_cors_answers_only_the_configured_origins(engine: Engine) -> None:
    settings = load_settings(
        None,
        database_url=str(engine.url),
        api_keys=[ADMIN_KEY],
        cors_origins="https://navigator.example",
    )
    with TestClient(create_app(settings, engine)) as client:
        allowed = client.get(
            "/people", headers={**bearer(ADMIN_KEY), "Origin": "https://navigator.example"}
        )
        assert allowed.headers["access-control-allow-origin"] == "https://navigator.example"
        other = client.get(
            "/people", headers={**bearer(ADMIN_KEY), "Origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in other.headers


def test_a_patient_level_token_holds_no_other_permission(
    client: TestClient, issuer: Issuer, tmp_path: Path, import_files: ImportFn
) -> None:
    """Whatever else the issuer grants, a client limited to one patient reads that one
    person: the feed, subscriptions and linking span other people."""
    token = issuer.token(
        scope="patient/*.rs journey/feed.read journey/subscriptions.manage journey/people.link",
        patient="someone",
    )
    assert client.get("/feed", headers=bearer(token)).status_code == 403
    assert client.get("/subscriptions", headers=bearer(token)).status_code == 403
    assert client.get("/people/review", headers=bearer(token)).status_code == 403


def test_managing_subscriptions_alone_cannot_send_the_feed_anywhere(
    client: TestClient, issuer: Issuer
) -> None:
    token = issuer.token(scope="user/Subscription.write")
    made = client.post("/subscriptions", headers=bearer(token), json={"url": "https://x.example"})
    assert made.status_code == 403
    assert made.json()["detail"] == "this client lacks the scope journey/feed.read"
    fhir = client.post("/fhir/Subscription", headers=bearer(token), json={})
    assert fhir.status_code == 403
    assert client.get("/subscriptions", headers=bearer(token)).status_code == 200
