"""Roster churn against a real server (sekmet-fhir): a payer member who leaves the roster
(the Group loses them, their membership is marked inactive or ended, or their Coverage
ends) stops being synced, and what happens to the data already held is the source's
`on_leaving`: keep it in the journey, retire it from the journey until they return, or
purge it from the store. A member new on the roster is pulled whole.

Expected answers, written before the rules: a payer's journey of a former member is
configuration, not a guess (keep is the default: nothing silently lost); retiring is
undone by returning; a purge is for good, so a roster read empty never purges."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from integration.api.app import create_app
from integration.config import Settings
from integration.journey.update import flag_all, update_journey
from integration.sources import SourceConfig
from integration.store.schema import (
    audit_events,
    job_records,
    people,
    person_links,
    raw_resources,
)
from integration.sync.runners import sync_source
from mappings.rulepack import RulePack
from tests.servers import Sekmet, seeded_sekmet

pytestmark = pytest.mark.slow
FHIR = {"Content-Type": "application/fhir+json"}


@pytest.fixture(scope="module")
def sekmet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sekmet]:
    yield from seeded_sekmet(tmp_path_factory.mktemp("sekmet-roster"), 8)


@pytest.fixture(scope="module")
def patient_ids(sekmet: Sekmet) -> list[str]:
    """The seeded Patients, those with encounters first."""
    everyone = httpx.get(f"{sekmet.base_url}/Patient", params={"_count": "200"}, timeout=10)
    ids = sorted(entry["resource"]["id"] for entry in everyone.json()["entry"])
    return sorted(ids, key=lambda pid: not encounters_of(sekmet, pid))


def encounters_of(sekmet: Sekmet, patient_id: str) -> set[str]:
    found = httpx.get(
        f"{sekmet.base_url}/Encounter",
        params={"patient": f"Patient/{patient_id}", "_count": "200"},
        timeout=10,
    ).json()
    return {entry["resource"]["id"] for entry in found.get("entry", [])}


class Roster:
    """A Group on the server, rewritten as members come and go."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        created = httpx.post(
            f"{base_url}/Group",
            json={"resourceType": "Group", "type": "person", "actual": True},
            headers=FHIR,
            timeout=10,
        )
        assert created.status_code == 201, created.text
        self.id = created.json()["id"]

    def set(self, *members: str, **member_fields: dict[str, Any]) -> None:
        group = {
            "resourceType": "Group",
            "id": self.id,
            "type": "person",
            "actual": True,
            "member": [
                {"entity": {"reference": f"Patient/{pid}"}, **member_fields.get(pid, {})}
                for pid in members
            ],
        }
        answer = httpx.put(f"{self.base_url}/Group/{self.id}", json=group, headers=FHIR, timeout=10)
        assert answer.status_code in (200, 201), answer.text


def payer(base_url: str, **members: Any) -> SourceConfig:
    return SourceConfig.model_validate(
        {
            "name": "payer",
            "kind": "payer",
            "base_url": base_url,
            "mode": "rest",
            "resource_types": ["Patient", "Encounter"],
            "overlap_seconds": 0,
            "members": members,
        }
    )


async def sync(engine: Engine, pack: RulePack, config: SourceConfig) -> Any:
    summary = await sync_source(engine, pack, Settings(), config)
    assert summary.error is None, summary.error
    assert not summary.failed, summary.types
    return summary


def in_journey(engine: Engine) -> set[str]:
    """The payer's Patients linked to a person in the journey (not retired)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(person_links.c.patient_id)
            .join(people, people.c.id == person_links.c.person_id)
            .where(person_links.c.source == "payer", people.c.retired_at.is_(None))
        )
        return {row.patient_id for row in rows}


def with_records(engine: Engine) -> set[str]:
    """The payer's Patients with a job record in the journey."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(job_records.c.subject_id)
            .where(job_records.c.source == "payer", job_records.c.excluded.is_(False))
            .distinct()
        )
        return {row.subject_id for row in rows}


def live_people(engine: Engine) -> int:
    with engine.connect() as conn:
        return len(
            conn.execute(
                select(people.c.id).where(
                    people.c.retired_at.is_(None), people.c.merged_into.is_(None)
                )
            ).all()
        )


def stored_contents(engine: Engine, patient_id: str) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(raw_resources.c.content).where(
                    raw_resources.c.source == "payer",
                    raw_resources.c.resource_type == "Patient",
                    raw_resources.c.resource_id == patient_id,
                )
            ).scalars()
        )


async def test_retire_takes_a_leaver_out_of_the_journey_until_they_return(
    sekmet: Sekmet, patient_ids: list[str], engine: Engine, pack: RulePack
) -> None:
    a, b, c = patient_ids[:3]
    roster = Roster(sekmet.base_url)
    roster.set(a, b, c)
    config = payer(sekmet.base_url, group=f"Group/{roster.id}", on_leaving="retire")
    await sync(engine, pack, config)
    assert in_journey(engine) == {a, b, c}
    assert live_people(engine) == 3
    assert c in with_records(engine)

    roster.set(a, b, c, **{c: {"inactive": True}})  # C's membership lapsed
    summary = await sync(engine, pack, config)
    assert in_journey(engine) == {a, b}
    assert live_people(engine) == 2
    assert c not in with_records(engine)
    assert any("1 left (their data retired from the journey)" in n for n in summary.notes)
    assert stored_contents(engine, c) != ["{}"]  # kept stored
    with engine.connect() as conn:
        reasons = set(
            conn.execute(
                select(job_records.c.removed_reason).where(job_records.c.subject_id == c)
            ).scalars()
        )
    assert reasons == {"left the member roster of its source"}
    assert roster_shown(engine, config) == {"on_leaving": "retire", "members": 2, "retired": 1}

    # A remap maps everything again: a retired member stays out.
    flag_all(engine)
    update_journey(engine, pack)
    assert in_journey(engine) == {a, b}

    roster.set(a, b, c)  # C is back
    await sync(engine, pack, config)
    assert in_journey(engine) == {a, b, c}
    assert live_people(engine) == 3
    assert c in with_records(engine)
    assert roster_shown(engine, config) == {"on_leaving": "retire", "members": 3, "retired": 0}


def roster_shown(engine: Engine, config: SourceConfig) -> Any:
    """The roster as `GET /sources` (and `journey sources --json`) show it."""
    settings = Settings(api_keys=["k"], database_url=str(engine.url), sources=[config])
    with TestClient(create_app(settings, engine)) as client:
        answer = client.get("/sources", headers={"Authorization": "Bearer k"})
    assert answer.status_code == 200, answer.text
    [source] = answer.json()["items"]
    return source["roster"]


async def test_keep_leaves_a_leavers_journey_as_it_was(
    sekmet: Sekmet, patient_ids: list[str], engine: Engine, pack: RulePack
) -> None:
    a, b = patient_ids[:2]
    roster = Roster(sekmet.base_url)
    roster.set(a, b)
    config = payer(sekmet.base_url, group=f"Group/{roster.id}")  # keep: the default
    await sync(engine, pack, config)
    roster.set(a, **{})
    summary = await sync(engine, pack, config)
    assert in_journey(engine) == {a, b}
    assert any("1 left (their data kept in the journey)" in n for n in summary.notes)


async def test_purge_removes_a_leavers_data_and_an_empty_roster_purges_nothing(
    sekmet: Sekmet, patient_ids: list[str], engine: Engine, pack: RulePack
) -> None:
    a, b = patient_ids[:2]
    roster = Roster(sekmet.base_url)
    roster.set(a, b)
    config = payer(sekmet.base_url, group=f"Group/{roster.id}", on_leaving="purge")
    await sync(engine, pack, config)

    roster.set()  # read empty: a server's fault as likely as everyone leaving at once
    refused = await sync_source(engine, pack, Settings(), config)
    assert "read empty" in (refused.error or "")
    assert in_journey(engine) == {a, b}

    # B's membership ended last year.
    roster.set(a, b, **{b: {"period": {"start": "2020-01-01", "end": "2021-12-31"}}})
    await sync(engine, pack, config)
    assert in_journey(engine) == {a}
    assert stored_contents(engine, b) == ["{}"]
    with engine.connect() as conn:
        purges = conn.execute(
            select(audit_events.c.client, audit_events.c.path).where(
                audit_events.c.subtype == "purge"
            )
        ).all()
    assert ("sync:payer", f"payer/Patient/{b}") in purges


async def test_a_coverage_roster_drops_a_member_whose_coverage_ended(
    sekmet: Sekmet, patient_ids: list[str], engine: Engine, pack: RulePack
) -> None:
    a, b, c = patient_ids[3:6]
    org = httpx.post(
        f"{sekmet.base_url}/Organization",
        json={"resourceType": "Organization", "name": "Plan Co"},
        headers=FHIR,
        timeout=10,
    ).json()["id"]

    def coverage(pid: str, status: str = "active", **period: str) -> None:
        body = {
            "resourceType": "Coverage",
            "status": status,
            "beneficiary": {"reference": f"Patient/{pid}"},
            "payor": [{"reference": f"Organization/{org}"}],
            **({"period": period} if period else {}),
        }
        answer = httpx.post(f"{sekmet.base_url}/Coverage", json=body, headers=FHIR, timeout=10)
        assert answer.status_code == 201, answer.text

    coverage(a)
    coverage(b, start="2024-01-01", end="2024-12-31")  # ended
    coverage(c, status="cancelled")
    config = payer(sekmet.base_url, coverage_payor=f"Organization/{org}")
    summary = await sync(engine, pack, config)
    assert in_journey(engine) == {a}
    assert any("member roster: 1 members" in n for n in summary.notes)


async def test_a_member_new_on_the_roster_is_pulled_whole(
    sekmet: Sekmet, patient_ids: list[str], engine: Engine, pack: RulePack
) -> None:
    a, d = patient_ids[:2]
    roster = Roster(sekmet.base_url)
    roster.set(a)
    config = payer(sekmet.base_url, group=f"Group/{roster.id}")
    await sync(engine, pack, config)
    d_encounters = encounters_of(sekmet, d)
    # One of A's encounters changes now, and is synced: the checkpoint passes all of D's.
    first = sorted(encounters_of(sekmet, a))[0]
    body = httpx.get(f"{sekmet.base_url}/Encounter/{first}", timeout=10).json()
    body.pop("meta", None)
    body["status"] = "finished"
    changed = httpx.put(f"{sekmet.base_url}/Encounter/{first}", json=body, headers=FHIR, timeout=10)
    assert changed.status_code == 200, changed.text
    await sync(engine, pack, config)
    assert d_encounters, "the seeded patient has encounters"

    roster.set(a, d)  # D joins; their encounters predate the checkpoint
    await sync(engine, pack, config)
    with engine.connect() as conn:
        stored = set(
            conn.execute(
                select(raw_resources.c.resource_id).where(
                    raw_resources.c.source == "payer", raw_resources.c.resource_type == "Encounter"
                )
            ).scalars()
        )
    assert d_encounters <= stored


def test_a_roster_setting_outside_the_rules_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="on_leaving"):
        payer("http://x.example/fhir", group="Group/1", on_leaving="forget")
    with pytest.raises(ValueError, match="Organization"):
        payer("http://x.example/fhir", coverage_payor="Patient/1")


async def test_a_roster_sync_reads_deletions_of_members_data_from_the_history(
    sekmet: Sekmet, patient_ids: list[str], engine: Engine, pack: RulePack
) -> None:
    """A member's encounter deleted at the source leaves the journey at the next sync, as
    for a whole-population source; a non-member's deletion leaves no trace here."""

    # The module's tests (and both backends) share the server: this test makes its own.
    def create(body: dict[str, Any]) -> str:
        answer = httpx.post(
            f"{sekmet.base_url}/{body['resourceType']}", json=body, headers=FHIR, timeout=10
        )
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    def visit(pid: str) -> str:
        return create(
            {
                "resourceType": "Encounter",
                "status": "finished",
                "class": {"code": "AMB"},
                "subject": {"reference": f"Patient/{pid}"},
                "period": {"start": "2026-05-01T09:00:00Z"},
            }
        )

    a, outsider = (create({"resourceType": "Patient", "gender": "other"}) for _ in range(2))
    gone, kept, outsiders = visit(a), visit(a), visit(outsider)
    roster = Roster(sekmet.base_url)
    roster.set(a)
    config = payer(sekmet.base_url, group=f"Group/{roster.id}")
    await sync(engine, pack, config)
    for encounter_id in (gone, outsiders):
        deleted = httpx.delete(f"{sekmet.base_url}/Encounter/{encounter_id}", timeout=10)
        assert deleted.status_code in (200, 204), deleted.text

    summary = await sync(engine, pack, config)

    assert summary.types["Encounter"].history, "read from the type's history"
    with engine.connect() as conn:
        rows = conn.execute(
            select(raw_resources.c.resource_id, raw_resources.c.deleted).where(
                raw_resources.c.source == "payer", raw_resources.c.resource_type == "Encounter"
            )
        ).all()
        in_journey_now = set(
            conn.execute(
                select(job_records.c.resource_id).where(
                    job_records.c.source == "payer", job_records.c.excluded.is_(False)
                )
            ).scalars()
        )
    assert (gone, True) in rows
    assert outsiders not in {row.resource_id for row in rows}, "nothing about a non-member"
    assert gone not in in_journey_now
    assert kept in in_journey_now
