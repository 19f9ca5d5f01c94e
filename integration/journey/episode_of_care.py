"""Episodes as FHIR R4 EpisodeOfCare resources, for clients that read FHIR.

The concern is the EpisodeOfCare's type (the pack's concern, and the ICD-10-CM or
SNOMED CT code where it is one); the journey's own status, stages and wait, which
R4 has no element for, are extensions. `patient` names the unified person.
"""

from __future__ import annotations

from typing import Any

from mappings.episodes import SNOMED

BASE = "https://fhir-journey.dev"
CONCERN_SYSTEM = f"{BASE}/CodeSystem/concern"
STATUS_SYSTEM = f"{BASE}/CodeSystem/episode-status"
JOB_SYSTEM = f"{BASE}/CodeSystem/jtbd-job"
STATUS_EXTENSION = f"{BASE}/StructureDefinition/episode-status"
STAGE_EXTENSION = f"{BASE}/StructureDefinition/episode-stage"
WAIT_EXTENSION = f"{BASE}/StructureDefinition/episode-wait-days"
CLOSED = {"resolved", "lost_to_follow_up"}
CODE_SYSTEMS = {"icd10cm": "http://hl7.org/fhir/sid/icd-10-cm", "sct": SNOMED}


def episode_of_care(person_id: str, episode: dict[str, Any]) -> dict[str, Any]:
    concern = episode["concern"]
    codings = [{"system": CONCERN_SYSTEM, "code": concern["id"], "display": concern["title"]}]
    prefix, _, code = concern["id"].partition(":")
    if code and prefix in CODE_SYSTEMS:
        codings.append({"system": CODE_SYSTEMS[prefix], "code": code})
    extensions: list[dict[str, Any]] = [
        {
            "url": STATUS_EXTENSION,
            "valueCoding": {"system": STATUS_SYSTEM, "code": episode["status"]},
        }
    ]
    for stage in episode["stages"]:
        extensions.append(
            {
                "url": STAGE_EXTENSION,
                "extension": [
                    {"url": "job", "valueCoding": {"system": JOB_SYSTEM, "code": stage["job"]}},
                    {
                        "url": "period",
                        "valuePeriod": {"start": stage["start"], "end": stage["end"]},
                    },
                    {"url": "records", "valueInteger": len(stage["records"])},
                ],
            }
        )
    if episode["wait_days"] is not None:
        extensions.append({"url": WAIT_EXTENSION, "valueInteger": episode["wait_days"]["days"]})
    span = {k: v for k, v in (("start", episode["start"]), ("end", episode["end"])) if v}
    resource: dict[str, Any] = {
        "resourceType": "EpisodeOfCare",
        "id": episode["id"],
        "extension": extensions,
        "status": "finished" if episode["status"] in CLOSED else "active",
        "type": [{"coding": codings, "text": concern["title"]}],
        "patient": {"reference": f"Patient/{person_id}"},
    }
    if span:
        resource["period"] = span
    return resource
