"""Reading pushed Bundles into writes (pure), and who may push (config)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from pydantic import ValidationError

from integration.config import Settings
from integration.errors import ConfigError
from integration.push.bundle import (
    PlannedWrite,
    bundle_kind,
    full_url_targets,
    overlapping,
    plan_entries,
    resolve_references,
)
from integration.push.errors import FhirError
from integration.push.service import content_hash
from integration.push_clients import load_push_keys


def ids() -> Any:
    counter = itertools.count(1)
    return lambda: f"new-{next(counter)}"


def entry(resource: dict[str, Any], method: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"resource": resource, "request": {"method": method, "url": url}, **extra}


def test_posts_get_server_ids_and_references_between_entries_follow_them() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            entry({"resourceType": "Patient"}, "POST", "Patient", fullUrl="urn:uuid:p"),
            entry(
                {"resourceType": "Encounter", "subject": {"reference": "urn:uuid:p"}},
                "POST",
                "Encounter",
            ),
            entry({"resourceType": "Patient", "id": "keep"}, "PUT", "Patient/keep"),
        ],
    }
    assert bundle_kind(bundle) == "transaction"
    writes = plan_entries(bundle, ids())
    assert all(isinstance(w, PlannedWrite) for w in writes)
    planned = [w for w in writes if isinstance(w, PlannedWrite)]
    assert [(w.method, w.resource_type, w.resource_id) for w in planned] == [
        ("POST", "Patient", "new-1"),
        ("POST", "Encounter", "new-2"),
        ("PUT", "Patient", "keep"),
    ]
    targets = full_url_targets(planned)
    resolve_references(planned[1], targets)
    assert planned[1].resource["subject"]["reference"] == "Patient/new-1"


@pytest.mark.parametrize(
    ("bad_entry", "says"),
    [
        ({"resource": {"resourceType": "Patient"}}, "request is missing"),
        (entry({"resourceType": "Patient"}, "PATCH", "Patient/x"), "only POST, PUT and DELETE"),
        (entry({"resourceType": "Patient"}, "POST", "Encounter"), "does not match"),
        (entry({"resourceType": "Patient", "id": "a"}, "PUT", "Patient/b"), "differs"),
        (entry({"resourceType": "Patient"}, "PUT", "Patient?identifier=x|1"), "conditional"),
        (entry({"resourceType": "Patient"}, "PUT", "Patient/not an id!"), "not a valid FHIR id"),
        ({"request": {"method": "POST", "url": "Patient"}}, "resource is missing"),
    ],
    ids=["no-request", "patch", "type-mismatch", "id-mismatch", "cond-update", "bad-id", "empty"],
)
def test_a_bad_entry_is_named_by_its_place(bad_entry: dict[str, Any], says: str) -> None:
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [{}, bad_entry]}
    errors = plan_entries(bundle, ids())
    assert isinstance(errors[1], FhirError)
    assert says in errors[1].issue.diagnostics
    assert "Bundle.entry[1]" in errors[1].issue.diagnostics


def test_entries_claiming_one_identity_are_errors_naming_each_other() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            entry({"resourceType": "Patient"}, "POST", "Patient", fullUrl="urn:uuid:p"),
            entry({"resourceType": "Patient", "id": "x"}, "PUT", "Patient/x"),
            entry({"resourceType": "Patient"}, "POST", "Patient", fullUrl="urn:uuid:p"),
            entry({"resourceType": "Encounter", "id": "x"}, "PUT", "Encounter/x"),
            entry({"resourceType": "Patient"}, "POST", "Patient", fullUrl="urn:uuid:p"),
            entry({"resourceType": "Patient", "id": "x"}, "PUT", "Patient/x"),
            {"request": {"method": "POST", "url": "Patient"}, "fullUrl": "urn:uuid:p"},
        ],
    }
    checked = overlapping("transaction", plan_entries(bundle, ids()))
    said = [item.issue.diagnostics if isinstance(item, FhirError) else None for item in checked]
    together = "Bundle.entry[0], Bundle.entry[2] and Bundle.entry[4] have the same fullUrl"
    assert [s is not None and s.startswith(together) for s in said[:5]] == [
        True,
        False,
        True,
        False,
        True,
    ]
    assert said[1] == said[5]
    assert said[1] is not None
    assert said[1].startswith("Bundle.entry[1] and Bundle.entry[5] all write Patient/x")
    assert said[3] is None  # another type, another resource
    assert "resource is missing" in (said[6] or "")  # unplannable: its fullUrl claims nothing


def test_a_reference_to_a_urn_no_entry_has_is_an_error() -> None:
    write = PlannedWrite(
        3,
        "POST",
        "Encounter",
        "e1",
        {"resourceType": "Encounter", "subject": {"reference": "urn:uuid:nowhere"}},
        None,
        None,
        None,
    )
    with pytest.raises(FhirError, match=r"Bundle.entry\[3\]"):
        resolve_references(write, {})


def test_only_transaction_and_batch_bundles_are_taken() -> None:
    for body in ({"resourceType": "Patient"}, {"resourceType": "Bundle", "type": "collection"}):
        with pytest.raises(FhirError) as raised:
            bundle_kind(body)
        assert raised.value.status == 400


def test_the_content_hash_ignores_id_and_server_metadata_only() -> None:
    base = {"resourceType": "Patient", "gender": "female"}
    same = base | {"id": "x", "meta": {"versionId": "7", "lastUpdated": "2026-01-01T00:00:00Z"}}
    tagged = base | {"meta": {"tag": [{"code": "vip"}]}}
    assert content_hash(base) == content_hash(same)
    assert content_hash(base) != content_hash(tagged)
    assert content_hash(base) != content_hash(base | {"gender": "male"})


def test_push_keys_name_their_source_and_config_errors_name_the_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLINIC_KEY", "k-1")
    settings = Settings(push_clients=[{"source": "clinic", "key_env": "CLINIC_KEY"}])
    assert load_push_keys(settings.push_clients, "journey.toml") == {"k-1": "clinic"}

    unset = Settings(push_clients=[{"source": "clinic", "key_env": "NOT_SET_ANYWHERE"}])
    with pytest.raises(ConfigError, match=r"push_clients\[0\].*key_env.*NOT_SET_ANYWHERE"):
        load_push_keys(unset.push_clients, "journey.toml")
    unnamed = Settings(push_clients=[{"source": "clinic"}])
    with pytest.raises(ConfigError, match="key_env or key_file"):
        load_push_keys(unnamed.push_clients, "journey.toml")
    # A misspelt key fails with the settings, before any key is read (the message as
    # load_settings words it: tests/integration/test_config.py).
    with pytest.raises(ValidationError, match="key_enc"):
        Settings(push_clients=[{"source": "clinic", "key_enc": "X"}])
