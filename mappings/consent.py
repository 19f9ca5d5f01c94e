"""FHIR R4 Consent as a privacy directive: does it withhold the patient's data, from
whom, and when. Pure: reads the resource, no I/O.

A Consent withholds when it is `active`, its scope is `patient-privacy` and its
provision is `deny`. Its recipients are the journey clients its provision's actors
name by identifier (system `CLIENT_SYSTEM`, value a client id). Actors that name no
journey client (an Organization, a Practitioner) cannot be told apart from our
clients, so such a Consent withholds from every client: privacy first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mypy_extensions import mypyc_attr

from mappings.fhir_values import reference_id

CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
CLIENT_SYSTEM = "https://fhir-journey.dev/client"


@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class PrivacyDirective:
    patient_id: str | None
    withholds: bool
    # The clients it withholds from; None: every client.
    recipients: tuple[str, ...] | None
    start: str | None
    end: str | None


def _is_privacy(scope: Any) -> bool:
    codings = scope.get("coding", []) if isinstance(scope, dict) else []
    return any(
        isinstance(c, dict)
        and c.get("code") == "patient-privacy"
        and c.get("system") in (None, CONSENT_SCOPE)
        for c in codings
    )


def _recipients(provision: dict[str, Any]) -> tuple[str, ...] | None:
    actors = [a for a in provision.get("actor") or [] if isinstance(a, dict)]
    if not actors:
        return None
    named = []
    for actor in actors:
        reference = actor.get("reference")
        identifier = reference.get("identifier") if isinstance(reference, dict) else None
        if isinstance(identifier, dict) and identifier.get("system") == CLIENT_SYSTEM:
            value = identifier.get("value")
            if isinstance(value, str) and value:
                named.append(value)
    return tuple(sorted(set(named))) or None


def privacy_directive(consent: dict[str, Any]) -> PrivacyDirective:
    patient = reference_id(consent.get("patient"), "Patient")
    provision = consent.get("provision")
    provision = provision if isinstance(provision, dict) else {}
    withholds = (
        consent.get("status") == "active"
        and _is_privacy(consent.get("scope"))
        and provision.get("type") == "deny"
    )
    found = provision.get("period")
    period: dict[str, Any] = found if isinstance(found, dict) else {}
    return PrivacyDirective(
        patient,
        withholds,
        _recipients(provision) if withholds else None,
        period.get("start"),
        period.get("end"),
    )
