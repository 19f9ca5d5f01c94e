"""Member-scoped pulls for payers: resolve the roster to Patient ids, then search in batches.

The roster is a Group on the server (its `member.entity` references, less those
marked inactive or whose membership period has ended), the beneficiaries of a
payor's Coverages in force today (`Coverage?payor=...`: status active, period not
ended nor yet to start), or a list of Patient identifiers (searched
`identifier=a,b,...`); several of these are a union. Patients are then
pulled with `_id=...` and their Encounters and QuestionnaireResponses with
`patient=...`, a batch of ids per search. Servers that do not declare
`patient` for a type, or ignore it (some answer with a warning entry), get a
type-level search instead, and what comes back is filtered here to members.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from connectors.errors import FatalFhirError
from connectors.rest.http import FhirHttp
from connectors.rest.search import search
from integration.clock import utc_now
from mappings.fhir_values import reference_id


async def roster_patient_ids(
    http: FhirHttp,
    base_url: str,
    group: str | None,
    identifiers: Sequence[str],
    batch_size: int,
    coverage_payor: str | None = None,
    today: str | None = None,
) -> list[str]:
    """The Patient ids of the roster today (`today`: YYYY-MM-DD, default the UTC date),
    in a stable order. Raises on any failed read: a roster is never read in part."""
    day = today or utc_now()[:10]
    # A dict keeps first-seen order and dedupes in O(1): rosters run to many thousands.
    ids: dict[str, None] = {}
    if group is not None:
        body = await http.get_json(f"{base_url}/{group}")
        if body.get("resourceType") != "Group":
            raise FatalFhirError(f"{base_url}/{group}", 200, "the roster is not a Group")
        for member in body.get("member", []) if isinstance(body.get("member"), list) else []:
            if not isinstance(member, dict) or not _in_force(member, day):
                continue
            patient_id = reference_id(member.get("entity"), "Patient")
            if patient_id:
                ids.setdefault(patient_id)
    if coverage_payor is not None:
        params = {"payor": coverage_payor, "_count": "200"}
        async for page in search(http, base_url, "Coverage", params):
            for _, coverage in page.resources:
                if coverage.get("status") != "active" or not _in_force(coverage, day):
                    continue
                patient_id = reference_id(coverage.get("beneficiary"), "Patient")
                if patient_id:
                    ids.setdefault(patient_id)
    for chunk in batches(list(identifiers), batch_size):
        params = {"identifier": ",".join(chunk), "_count": str(max(len(chunk) * 2, 10))}
        async for page in search(http, base_url, "Patient", params):
            for _, patient in page.resources:
                patient_id = patient.get("id")
                if isinstance(patient_id, str):
                    ids.setdefault(patient_id)
    return list(ids)


def _in_force(element: dict[str, Any], day: str) -> bool:
    """A Group member or a Coverage counts today: not marked inactive, and its period
    (if any) neither ended before today nor starting after it (compared by date)."""
    if element.get("inactive") is True:
        return False
    period = element.get("period")
    if not isinstance(period, dict):
        return True
    start, end = period.get("start"), period.get("end")
    if isinstance(end, str) and end[:10] < day:
        return False
    return not (isinstance(start, str) and start[:10] > day)


def batches(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def belongs_to(resource: dict[str, Any], resource_type: str, members: set[str]) -> bool:
    if resource_type == "Patient":
        return resource.get("id") in members
    for element in ("subject", "patient"):
        patient_id = reference_id(resource.get(element), "Patient")
        if patient_id is not None:
            return patient_id in members
    return False
