"""The CapabilityStatement of /fhir: what the write endpoint really supports, and no more."""

from __future__ import annotations

from typing import Any

from integration.clock import utc_now
from integration.derived_types import journey_types
from integration.webhooks.fhir_subscriptions import SUBSCRIPTION_PROFILE, TOPIC, TOPIC_CANONICAL

# Mapped into the journey.
JOURNEY_TYPES = journey_types()
# What US Core transaction Bundles commonly carry beside them: validated and kept raw.
# A type once mapped into the journey drops out of it: no type is declared twice.
_CARRIED_BESIDE = (
    "Condition",
    "Observation",
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Location",
    "MedicationRequest",
    "DiagnosticReport",
    "Procedure",
    "AllergyIntolerance",
    "Immunization",
)
KEPT_RAW_TYPES = tuple(name for name in _CARRIED_BESIDE if name not in JOURNEY_TYPES)


def _listed(names: tuple[str, ...]) -> str:
    """'A, B and C'."""
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def _resource(resource_type: str, documentation: str) -> dict[str, Any]:
    return {
        "type": resource_type,
        "documentation": documentation,
        "interaction": [
            {"code": code}
            for code in (
                "read",
                "vread",
                "create",
                "update",
                "delete",
                "history-instance",
                "search-type",
            )
        ],
        "versioning": "versioned-update",
        # Every version is kept and read back by vread; a deletion is a version too.
        "readHistory": True,
        "updateCreate": True,
        "conditionalCreate": True,
        "conditionalRead": "not-supported",
        "conditionalUpdate": False,
        # By identifier or _id: one match is deleted, several are a 412.
        "conditionalDelete": "single",
        "searchParam": [
            {
                "name": "identifier",
                "type": "token",
                "documentation": "system|value or value; what If-None-Exist and a "
                "conditional delete may use",
            },
            {"name": "_id", "type": "token"},
        ],
    }


BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport"
# The unified journey's FHIR views, for journey readers (an API key).
JOURNEY_VIEWS: list[dict[str, Any]] = [
    {
        "type": "AuditEvent",
        "documentation": "the audit trail, IHE BALP shaped (journey/audit.read scope)",
        "supportedProfile": [
            "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientRead"
        ],
        "interaction": [{"code": "search-type"}],
        "searchParam": [
            {"name": "patient", "type": "reference"},
            {"name": "date", "type": "date"},
        ],
    },
    {
        "type": "EpisodeOfCare",
        "documentation": "the unified person's episodes (API key): read, and search by patient",
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "searchParam": [{"name": "patient", "type": "reference"}],
    },
    {
        "type": "Subscription",
        "documentation": "topic-based subscriptions per the Subscriptions R5 Backport IG (API "
        "key): rest-hook, handshake, heartbeat, content empty, id-only or full-resource",
        "supportedProfile": [SUBSCRIPTION_PROFILE],
        "extension": [
            {
                "url": TOPIC_CANONICAL,
                "valueCanonical": TOPIC,
            }
        ],
        "interaction": [{"code": code} for code in ("create", "read", "delete", "search-type")],
        "operation": [
            {
                "name": "status",
                "definition": f"{BACKPORT}/OperationDefinition/backport-subscription-status",
            },
            {
                "name": "events",
                "definition": f"{BACKPORT}/OperationDefinition/backport-subscription-events",
            },
        ],
    },
]


def capability_statement(base_url: str, version: str, max_bundle_entries: int) -> dict[str, Any]:
    concern = {"Condition": "validated and kept raw; its codes are read as an encounter's concern"}
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": utc_now(),
        "publisher": "fhir-journey",
        "kind": "instance",
        "software": {"name": "fhir-journey", "version": version},
        "implementation": {
            "description": "fhir-journey push endpoint: providers send resources in",
            "url": base_url,
        },
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": (
                    "Every write is validated against FHIR R4 and stored under the pushing "
                    f"source (the API key names it). {_listed(JOURNEY_TYPES)} are mapped into "
                    "the patient journey; any other R4 resource type is accepted the same way, "
                    "validated and kept raw. Reads return only what the same source pushed. "
                    "A delete is a version (a later read is 410 Gone, its history keeps "
                    "the versions); deleting again, or what the source never sent, is a "
                    "200, and the deletion is remembered: a version whose own "
                    "meta.lastUpdated is not after it stays history."
                ),
                "security": {
                    "description": "Authorization: Bearer <push key>; one key per pushing source"
                },
                "resource": [
                    _resource(name, "mapped into the patient journey") for name in JOURNEY_TYPES
                ]
                + [
                    _resource(name, concern.get(name, "validated and kept raw"))
                    for name in KEPT_RAW_TYPES
                ]
                + JOURNEY_VIEWS,
                "operation": [
                    {
                        "name": "match",
                        "definition": "http://hl7.org/fhir/OperationDefinition/Patient-match",
                        "documentation": "POST /Patient/$match: graded candidates (certain, "
                        "probable, possible) by the store's identity rules; an API key "
                        "searches every source, a push key its own",
                    }
                ],
                "interaction": [
                    {
                        "code": "transaction",
                        "documentation": f"all or nothing; at most {max_bundle_entries} entries",
                    },
                    {
                        "code": "batch",
                        "documentation": f"each entry on its own; at most {max_bundle_entries} "
                        "entries",
                    },
                ],
            }
        ],
    }
