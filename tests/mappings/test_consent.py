"""A FHIR Consent read as a privacy directive: what withholds, from whom, when."""

from __future__ import annotations

from typing import Any

import pytest

from mappings.consent import CLIENT_SYSTEM, CONSENT_SCOPE, privacy_directive


def consent(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "resourceType": "Consent",
        "id": "c1",
        "status": "active",
        "scope": {"coding": [{"system": CONSENT_SCOPE, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": "Patient/p1"},
        "provision": {"type": "deny"},
    }
    return {**base, **changes}


def client(value: str) -> dict[str, Any]:
    return {"reference": {"identifier": {"system": CLIENT_SYSTEM, "value": value}}}


def test_an_active_privacy_deny_withholds_from_every_client() -> None:
    found = privacy_directive(consent())
    assert (found.patient_id, found.withholds, found.recipients) == ("p1", True, None)


@pytest.mark.parametrize(
    "changes",
    [
        {"status": "inactive"},  # withdrawn
        {"status": "draft"},
        {"status": "entered-in-error"},
        {"provision": {"type": "permit"}},
        {"provision": {}},
        {"scope": {"coding": [{"system": CONSENT_SCOPE, "code": "treatment"}]}},
        {"scope": None},
    ],
)
def test_anything_else_withholds_nothing(changes: dict[str, Any]) -> None:
    assert privacy_directive(consent(**changes)).withholds is False


def test_named_clients_are_the_only_recipients() -> None:
    found = privacy_directive(
        consent(provision={"type": "deny", "actor": [client("care-app"), client("navigator")]})
    )
    assert found.recipients == ("care-app", "navigator")


def test_actors_that_name_no_client_withhold_from_every_client() -> None:
    organization = {"reference": {"reference": "Organization/o1"}}
    found = privacy_directive(consent(provision={"type": "deny", "actor": [organization]}))
    assert found.withholds is True
    assert found.recipients is None


def test_the_provision_period_is_kept() -> None:
    found = privacy_directive(
        consent(provision={"type": "deny", "period": {"start": "2026-01-01", "end": "2026-06-30"}})
    )
    assert (found.start, found.end) == ("2026-01-01", "2026-06-30")
