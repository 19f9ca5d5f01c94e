"""Scopes and what they permit: the journey API's own permissions, and SMART on FHIR
scopes (v1 and v2) read as the permissions they imply. Pure: no I/O.

A SMART read of Patient (or of every type) at `system/` level reads journeys and the
feed; at `user/` level journeys only; at `patient/` level only the journey of the
person the token's `patient` claim names. SMART writes of Subscription manage
subscriptions. The journey scopes grant exactly their permission.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum


class Permission(StrEnum):
    """The journey API's permissions; each is also a scope of the same name."""

    READ_PEOPLE = "journey/people.read"
    LINK_PEOPLE = "journey/people.link"
    READ_FEED = "journey/feed.read"
    MANAGE_SUBSCRIPTIONS = "journey/subscriptions.manage"
    READ_OPERATIONS = "journey/operations.read"
    START_SYNCS = "journey/sync.start"
    MANAGE_QUARANTINE = "journey/quarantine.manage"
    READ_AUDIT = "journey/audit.read"
    READ_METRICS = "journey/metrics.read"
    PURGE_DATA = "journey/data.purge"


DESCRIPTIONS = {
    Permission.READ_PEOPLE: "read people, journeys, episodes, outcome measures, "
    "EpisodeOfCare and $match",
    Permission.LINK_PEOPLE: "link, keep apart, merge and split people",
    Permission.READ_FEED: "read the journey feed (GET /feed, /feed/stream)",
    Permission.MANAGE_SUBSCRIPTIONS: "manage webhook and FHIR subscriptions",
    Permission.READ_OPERATIONS: "read the store's status, sources and quarantine",
    Permission.START_SYNCS: "start a sync of a source",
    Permission.MANAGE_QUARANTINE: "dismiss or resolve quarantine entries",
    Permission.READ_AUDIT: "read the audit trail (GET /fhir/AuditEvent): auditors only",
    Permission.READ_METRICS: "scrape the operational metrics (GET /metrics): counts by "
    "source and type, sync lag, backlogs, latency; no patient data",
    Permission.PURGE_DATA: "purge a stored resource: every version and what was derived "
    "from it (POST /purge); administrators only",
}
ALL = frozenset(Permission)

# SMART v1 (`.read`, `.write`, `.*`) and v2 (`.cruds` letters) scopes.
_SMART = re.compile(r"^(system|user|patient)/(\*|[A-Z][A-Za-z]+)\.(read|write|\*|[cruds]+)$")
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
_READS = {"Patient", "EpisodeOfCare", "*"}
_SUBSCRIPTIONS = {"Subscription", "*"}


def _smart_grants(scope: str) -> tuple[set[Permission], bool]:
    """What one SMART scope permits, and whether it is patient-level (limited to the
    `patient` claim's person)."""
    found = _SMART.match(scope)
    if found is None:
        return set(), False
    level, resource, access = found.groups()
    letters = _V1.get(access, access)  # v1 names as v2 letters
    reads, writes = "r" in letters, "c" in letters or "u" in letters
    granted: set[Permission] = set()
    if reads and resource in _READS:
        granted.add(Permission.READ_PEOPLE)
        if level == "system":
            granted.add(Permission.READ_FEED)
    if writes and resource in _SUBSCRIPTIONS and level != "patient":
        granted.add(Permission.MANAGE_SUBSCRIPTIONS)
    return granted, level == "patient"


def permissions(scopes: Iterable[str]) -> tuple[frozenset[Permission], bool]:
    """Every permission these scopes grant, and whether reads are limited to one patient
    (only patient-level SMART scopes grant reading people)."""
    granted: set[Permission] = set()
    broad_read = False
    patient_read = False
    known = {p.value: p for p in Permission}
    for scope in scopes:
        if scope in known:
            granted.add(known[scope])
            broad_read |= known[scope] is Permission.READ_PEOPLE
            continue
        smart, patient_level = _smart_grants(scope)
        granted |= smart
        if Permission.READ_PEOPLE in smart:
            if patient_level:
                patient_read = True
            else:
                broad_read = True
    return frozenset(granted), patient_read and not broad_read
