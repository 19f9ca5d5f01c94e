"""GET /metrics, as Prometheus scrapes it: what was received, stored and quarantined by
source and type, sync lag, backlogs, feed deliveries per subscription and request
latency per route template, behind its own scope, and with nobody's data in a label."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from sqlalchemy import Engine, select

from integration.api.app import create_app
from integration.config import Settings
from integration.store.metrics import ReceivedTally
from integration.store.schema import audit_events
from integration.store.sync_state import record_run
from mappings.dates import ISO_FORMAT
from tests.conftest import ImportFn, encounter, patient, write_ndjson
from tests.webhook_receiver import API_KEY, Receiver, delivering, quick_settings, subscribe

SCRAPER = "prometheus-key"
READER = "reader-key"
PUSH = "ehr-push-key"
# A name only the pushed Patient carries: it must never reach a label.
NAME = "Quillfeather"
SOURCE = "riverside-ehr"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def settings_for(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("METRICS_SCRAPER_KEY", SCRAPER)
    monkeypatch.setenv("METRICS_READER_KEY", READER)
    monkeypatch.setenv("METRICS_PUSH_KEY", PUSH)
    scraper = {"id": "prometheus", "scopes": ["journey/metrics.read"]}
    reader = {"id": "reader", "scopes": ["journey/people.read"]}
    source = {"name": SOURCE, "kind": "provider", "base_url": "http://127.0.0.1:9", "mode": "rest"}
    return quick_settings(
        engine,
        clients=[
            {**scraper, "key_env": "METRICS_SCRAPER_KEY"},
            {**reader, "key_env": "METRICS_READER_KEY"},
        ],
        push_clients=[{"source": "ehr", "key_env": "METRICS_PUSH_KEY"}],
        sources=[source],
    )


@pytest.fixture
def client(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(engine, monkeypatch), engine)) as test_client:
        yield test_client


def scrape(client: TestClient) -> tuple[str, dict[str, list[Sample]]]:
    answer = client.get("/metrics", headers=bearer(SCRAPER))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    families = {f.name: f.samples for f in text_string_to_metric_families(answer.text)}
    return answer.text, families


def values(
    samples: list[Sample], *label_names: str, name: str | None = None
) -> dict[tuple[str, ...], float]:
    """Each sample's value by the values of `label_names` (of the samples named `name`)."""
    return {
        tuple(s.labels[n] for n in label_names): s.value
        for s in samples
        if name is None or s.name == name
    }


def push_patient(client: TestClient, pid: str) -> None:
    answer = client.put(
        f"/fhir/Patient/{pid}",
        headers={**bearer(PUSH), "Content-Type": "application/fhir+json"},
        json=patient(pid, name=[{"family": NAME, "given": ["Ottoline"]}]),
    )
    assert answer.status_code == 201, answer.text


def test_a_scrape_after_an_import_and_a_push_counts_them_by_source_and_type(
    client: TestClient, engine: Engine, import_files: ImportFn, tmp_path: Path, receiver: Receiver
) -> None:
    bad = '{"resourceType": "Patient", "id": "bad", "birthDate": "1970-13-01"}'
    import_files(
        write_ndjson(tmp_path / "a.ndjson", patient("p1"), encounter("e1", "p1"), bad),
        source="clinic",
    )
    push_patient(client, "px")
    push_patient(client, "px2")
    good = subscribe(client, receiver, "good")
    failing = subscribe(client, receiver, "failing", mode="failing", start="beginning")
    with delivering(engine, quick_settings(engine)):
        receiver.wait_for(lambda: receiver.endpoints["failing"].refused >= 2)
        push_patient(client, "px3")
        receiver.wait_for(lambda: len(receiver.endpoints["good"].taken) >= 1)
    succeeded = (datetime.now(UTC) - timedelta(hours=2)).strftime(ISO_FORMAT)
    failed_at = (datetime.now(UTC) - timedelta(hours=1)).strftime(ISO_FORMAT)
    with engine.begin() as conn:
        record_run(conn, SOURCE, "Patient", succeeded, succeeded, None, {})
        record_run(conn, SOURCE, "Patient", failed_at, failed_at, "HTTP 503", {})
        record_run(conn, SOURCE, "Encounter", succeeded, succeeded, None, {})
        record_run(conn, "no-longer-configured", "Patient", succeeded, succeeded, None, {})

    text, families = scrape(client)

    assert values(families["journey_store_up"]) == {(): 1}
    received = values(families["journey_resources_received"], "source", "resource_type")
    assert received == {("clinic", "Patient"): 1, ("clinic", "Encounter"): 1, ("ehr", "Patient"): 3}
    stored = values(families["journey_resources_stored"], "source", "resource_type")
    assert stored == received
    quarantined = values(
        families["journey_resources_quarantined"], "source", "resource_type", "stage"
    )
    assert quarantined == {("clinic", "Patient", "intake"): 1}
    assert sum(s.value for s in families["journey_derivation_backlog"]) == 0  # all mapped

    syncs = ("source", "resource_type")
    last_success = values(families["journey_sync_last_success_timestamp_seconds"], *syncs)
    assert last_success[(SOURCE, "Patient")] == datetime.fromisoformat(succeeded).timestamp()
    assert set(last_success) == {(SOURCE, "Patient"), (SOURCE, "Encounter")}
    lag = values(families["journey_sync_lag_seconds"], *syncs)
    assert 7190 < lag[(SOURCE, "Patient")] < 7300  # since the success, not the failure after
    failed = values(families["journey_sync_last_run_failed"], *syncs)
    assert failed == {(SOURCE, "Patient"): 1, (SOURCE, "Encounter"): 0}

    feeds = ("subscription", "kind")
    delivered = values(
        families["journey_feed_deliveries"], *feeds, name="journey_feed_deliveries_total"
    )
    assert delivered[(good, "webhook")] >= 1
    assert delivered[(failing, "webhook")] == 0
    failures = values(
        families["journey_feed_delivery_failures"],
        *feeds,
        name="journey_feed_delivery_failures_total",
    )
    assert failures[(good, "webhook")] == 0
    assert failures[(failing, "webhook")] >= 2
    assert values(families["journey_feed_endpoint_failing"], *feeds) == {
        (good, "webhook"): 0,
        (failing, "webhook"): 1,
    }

    label_values = {v for samples in families.values() for s in samples for v in s.labels.values()}
    people = [p["id"] for p in client.get("/people", headers=bearer(API_KEY)).json()["items"]]
    assert len(people) == 4
    for private in (NAME, "Ottoline", "px", "p1", "e1", receiver.url, *people):
        assert private not in label_values
    assert NAME not in text
    assert receiver.url not in text


def test_metrics_need_a_key_with_their_scope_and_a_scrape_is_not_audited(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(settings_for(engine, monkeypatch), engine)
    with TestClient(app) as client:
        nobody = client.get("/metrics")
        assert nobody.status_code == 401
        assert nobody.headers["content-type"] == "application/problem+json"
        refused = client.get("/metrics", headers=bearer(READER))
        assert refused.status_code == 403
        assert refused.json()["detail"] == "this client lacks the scope journey/metrics.read"
        assert client.get("/metrics", headers=bearer(SCRAPER)).status_code == 200
        # The cohort measures under /metrics/ still answer, and still to people.read.
        assert client.get("/metrics/outcomes", headers=bearer(READER)).status_code == 200
        assert client.get("/metrics/outcomes", headers=bearer(SCRAPER)).status_code == 403
    with engine.connect() as conn:  # the trail's writer has flushed once the app stopped
        audited = conn.execute(select(audit_events.c.path, audit_events.c.client)).all()
    assert all(path != "/metrics" for path, _ in audited)
    assert ("/metrics/outcomes", "api-key:reader") in audited


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_the_openapi_document_declares_metrics_as_text_behind_its_scope(
    client: TestClient,
) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/metrics"]["get"]
    assert operation["security"] == [{"ApiKey": ["journey/metrics.read"]}]
    assert set(operation["responses"]["200"]["content"]) == {
        "text/plain",
        "application/openmetrics-text",
    }
    for refused in ("401", "403"):
        assert set(operation["responses"][refused]["content"]) == {"application/problem+json"}
    asked = client.get(
        "/metrics", headers={**bearer(SCRAPER), "Accept": "application/openmetrics-text"}
    )
    assert asked.headers["content-type"].startswith("application/openmetrics-text")
    assert asked.text.endswith("# EOF\n")


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_latency_is_by_route_template_never_by_path(
    client: TestClient, import_files: ImportFn, tmp_path: Path
) -> None:
    import_files(write_ndjson(tmp_path / "a.ndjson", patient("p1")), source="clinic")
    [person] = client.get("/people", headers=bearer(API_KEY)).json()["items"]
    assert client.get(f"/people/{person['id']}", headers=bearer(API_KEY)).status_code == 200
    assert client.get("/people/someone-else", headers=bearer(API_KEY)).status_code == 404
    assert client.get("/nowhere/at-all").status_code == 404
    push_patient(client, "px")

    text, families = scrape(client)

    histogram = families["journey_http_request_duration_seconds"]
    counts = values(
        histogram, "method", "route", "status", name="journey_http_request_duration_seconds_count"
    )
    assert counts[("GET", "/people/{person_id}", "200")] == 1
    assert counts[("GET", "/people/{person_id}", "404")] == 1
    assert counts[("GET", "/people", "200")] == 1
    assert counts[("GET", "unmatched", "404")] == 1
    assert counts[("PUT", "/fhir/{resource_type}/{resource_id}", "201")] == 1
    routes = {s.labels["route"] for s in histogram}
    assert not any(person["id"] in r or "someone-else" in r or "px" in r for r in routes)
    assert "nowhere" not in text
    assert "this API process only" in text  # its HELP says whose requests it counts
    buckets = values(
        histogram, "route", "status", "le", name="journey_http_request_duration_seconds_bucket"
    )
    assert buckets[("/people/{person_id}", "200", "+Inf")] == 1


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_an_unreachable_store_still_answers_with_the_process_metrics(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    def away(*_args: object) -> None:
        raise OperationalError("SELECT", {}, Exception("connection refused"))

    monkeypatch.setattr("integration.api.store_collector.read_store", away)
    _, families = scrape(client)
    assert values(families["journey_store_up"]) == {(): 0}
    assert "journey_http_request_duration_seconds" in families
    assert "journey_resources_stored" not in families


def test_received_versions_are_counted_once_then_only_the_new_ones(
    engine: Engine, import_files: ImportFn, tmp_path: Path
) -> None:
    tally = ReceivedTally()
    import_files(write_ndjson(tmp_path / "a.ndjson", patient("p1"), patient("p2")), source="s")
    with engine.connect() as conn:
        # Read long after: what is held now is settled and kept.
        assert tally.read(conn, datetime.now(UTC) + timedelta(hours=1)) == {("s", "Patient"): 2}
    import_files(
        write_ndjson(tmp_path / "b.ndjson", patient("p1", gender="female"), encounter("e1", "p1")),
        source="s",
    )
    with engine.connect() as conn:
        now = tally.read(conn)  # the new versions are counted, not yet settled
        assert now == {("s", "Patient"): 3, ("s", "Encounter"): 1}
        assert tally.read(conn) == now
        assert tally.read(conn, datetime.now(UTC) + timedelta(hours=1)) == now
        assert ReceivedTally().read(conn) == now  # a fresh process counts the same
