"""Audit rows as FHIR R4 AuditEvent resources, shaped per the IHE Basic Audit Log
Patterns (BALP): a RESTful operation, its subtype, the requesting client and its
address, this server, the patient, and the query as it was asked. Pure."""

from __future__ import annotations

import base64
from typing import Any

BALP = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
INTERACTIONS = {
    "read": "read",
    "search": "search-type",
    "create": "create",
    "update": "update",
    "delete": "delete",
    "purge": "delete",  # every version and what was derived: a delete, audited as one
}
# BALP profile per interaction, with a patient (Patient*) or without.
PROFILES = {
    "read": "Read",
    "search": "Query",
    "create": "Create",
    "update": "Update",
    "delete": "Delete",
    "purge": "Delete",
    "transmit": "Read",
}
# A feed delivery to a subscribed endpoint is an export (DICOM 110106), not a REST read.
EXPORT = {"system": DCM, "code": "110106", "display": "Export"}


def audit_event(row: dict[str, Any]) -> dict[str, Any]:
    person = row["person_id"]
    kind = PROFILES.get(row["subtype"], "Read")
    profile = f"{BALP}.Patient{kind}" if person else f"{BALP}.{kind}"
    client: dict[str, Any] = {
        "type": {"coding": [{"system": DCM, "code": "110153", "display": "Source Role ID"}]},
        "who": {"identifier": {"value": row["client"]}},
        "requestor": True,
    }
    if row["address"]:
        client["network"] = {"address": row["address"], "type": "2"}
    server = {
        "type": {"coding": [{"system": DCM, "code": "110152", "display": "Destination Role ID"}]},
        "who": {"display": "fhir-journey"},
        "requestor": False,
    }
    entities: list[dict[str, Any]] = []
    if person:
        entities.append(
            {
                "what": {"reference": f"Patient/{person}"},
                "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
                "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"},
            }
        )
    asked = row["path"] + (f"?{row['query']}" if row["query"] else "")
    entities.append(
        {
            "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
            "role": {"system": OBJECT_ROLE, "code": "24", "display": "Query"},
            "description": f"{row['method']} {row['path']}",
            "query": base64.b64encode(asked.encode()).decode(),
        }
    )
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(row["id"]),
        "meta": {"profile": [profile]},
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
            "display": "Restful Operation",
        },
        "subtype": [
            EXPORT
            if row["subtype"] == "transmit"
            else {
                "system": "http://hl7.org/fhir/restful-interaction",
                "code": INTERACTIONS.get(row["subtype"], "read"),
            }
        ],
        "action": row["action"],
        "recorded": row["recorded"],
        "outcome": row["outcome"],
        "agent": [client, server],
        "source": {
            "observer": {"display": "fhir-journey"},
            "type": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                    "code": "4",
                    "display": "Application Server",
                }
            ],
        },
        "entity": entities,
    }
    if row["status"] is not None:
        event["outcomeDesc"] = f"HTTP {row['status']}"
    return event
