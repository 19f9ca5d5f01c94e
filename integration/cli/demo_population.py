"""A deterministic synthetic population for the demo, the tests and the benchmarks.

No real person is in it. Each person follows one of a few care stories that
touch all three jobs (a depression course, a knee replacement, diabetes
care, chest pain, anxiety, healthy check-ups). Two sources see them:

- `riverside-clinic` (a provider): Bulk-style NDJSON, one file per type, the
  way a Bulk Data export or Synthea's bulk exporter writes them; PHQ-9 and
  GAD-7 totals arrive as Observations (LOINC 44261-6, 70274-6) as Synthea
  writes them, and as QuestionnaireResponses built here from those totals,
  with the item answers nested inside a group item.
- `summit-health-plan` (a payer): a collection Bundle of claim-derived
  Encounters (CPT-typed) for its members; some members are also clinic
  patients and share their SSN identifier with them.

Same seed, same bytes.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

PROVIDER = "riverside-clinic"
PAYER = "summit-health-plan"
SCT = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC = "http://loinc.org"
CPT = "http://www.ama-assn.org/go/cpt"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
SSN = "http://hl7.org/fhir/sid/us-ssn"
CLINIC_MRN = "https://riverside-clinic.example/mrn"
PLAN_MEMBER = "https://summit-health-plan.example/member-id"
FULFILMENT_QUESTIONNAIRE = "http://fhir-journey.example/Questionnaire/job-fulfilment"
JOB_SYSTEM = "http://fhir-journey.example/CodeSystem/jtbd-job"
PHQ9_ITEMS = (
    "44250-9",
    "44255-8",
    "44259-0",
    "44254-1",
    "44251-7",
    "44258-2",
    "44252-5",
    "44253-3",
    "44260-8",
)
GAD7_ITEMS = ("69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7")
ANSWERS = (
    ("LA6568-5", "Not at all"),
    ("LA6569-3", "Several days"),
    ("LA6570-1", "More than half the days"),
    ("LA6571-9", "Nearly every day"),
)
GIVEN = (
    "Ava",
    "Ben",
    "Chloe",
    "Dev",
    "Elena",
    "Farah",
    "Gus",
    "Hana",
    "Ivo",
    "Jade",
    "Kofi",
    "Lena",
    "Mateo",
    "Nia",
    "Oren",
    "Priya",
    "Quinn",
    "Rosa",
    "Sami",
    "Tess",
    "Uma",
    "Viktor",
    "Wren",
    "Yusuf",
)
FAMILY = (
    "Alder",
    "Brook",
    "Castillo",
    "Dunmore",
    "Eze",
    "Fairweather",
    "Greaves",
    "Halloran",
    "Ishikawa",
    "Jovanovic",
    "Kowalczyk",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Quist",
    "Ramos",
)
STORIES = ("depression", "knee", "diabetes", "chest_pain", "anxiety", "healthy")


@dataclass(slots=True)
class DemoPerson:
    index: int
    given: str
    family: str
    gender: str
    birth_date: str
    ssn: str
    story: str
    in_clinic: bool
    in_plan: bool


@dataclass(slots=True)
class SourceData:
    resources: list[dict[str, Any]] = field(default_factory=list)

    def add(self, resource: dict[str, Any]) -> dict[str, Any]:
        self.resources.append(resource)
        return resource


def _concept(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S+00:00")


class _Generator:
    def __init__(self, seed: int, people: int) -> None:
        self.rng = random.Random(seed)
        self.count = people
        self.clinic = SourceData()
        self.plan = SourceData()
        self.ids: dict[str, int] = {}

    def next_id(self, prefix: str) -> str:
        self.ids[prefix] = self.ids.get(prefix, 0) + 1
        return f"{prefix}-{self.ids[prefix]:04d}"

    def people(self) -> Iterator[DemoPerson]:
        for index in range(self.count):
            rng = self.rng
            both = index % 5 == 0  # every fifth person is both a clinic patient and a plan member
            in_clinic = both or index % 5 != 4
            birth = datetime(1945, 1, 1, tzinfo=UTC) + timedelta(days=rng.randrange(0, 365 * 60))
            yield DemoPerson(
                index=index,
                given=GIVEN[index % len(GIVEN)],
                family=FAMILY[(index * 7) % len(FAMILY)],
                gender=rng.choice(("female", "male")),
                birth_date=birth.strftime("%Y-%m-%d"),
                ssn=f"999-{10 + index:02d}-{1000 + index * 37 % 9000:04d}",
                story=STORIES[index % len(STORIES)],
                in_clinic=in_clinic,
                in_plan=both or not in_clinic,
            )

    def patient(self, person: DemoPerson, source: str) -> dict[str, Any]:
        clinic = source == PROVIDER
        local = (
            (CLINIC_MRN, f"MRN{100000 + person.index}")
            if clinic
            else (PLAN_MEMBER, f"SHP-{700000 + person.index * 13}")
        )
        return {
            "resourceType": "Patient",
            "id": f"{'rc' if clinic else 'shp'}-pat-{person.index:03d}",
            "meta": {"lastUpdated": "2026-06-30T12:00:00+00:00"},
            "identifier": [
                {"system": local[0], "value": local[1]},
                {"system": SSN, "value": person.ssn},
            ],
            "name": [{"use": "official", "family": person.family, "given": [person.given]}],
            "gender": person.gender,
            "birthDate": person.birth_date,
        }

    def encounter(
        self,
        data: SourceData,
        patient_id: str,
        start: datetime,
        klass: str,
        type_: dict[str, Any],
        hours: float = 1.0,
        reason: dict[str, Any] | None = None,
        conditions: tuple[str, ...] = (),
        prefix: str = "rc-enc",
    ) -> dict[str, Any]:
        encounter: dict[str, Any] = {
            "resourceType": "Encounter",
            "id": self.next_id(prefix),
            "status": "finished",
            "class": {"system": ACT, "code": klass},
            "type": [type_],
            "subject": {"reference": f"Patient/{patient_id}"},
            "period": {"start": _when(start), "end": _when(start + timedelta(hours=hours))},
        }
        if reason:
            encounter["reasonCode"] = [reason]
        if conditions:
            encounter["diagnosis"] = [
                {"condition": {"reference": f"Condition/{cid}"}, "rank": rank}
                for rank, cid in enumerate(conditions, start=1)
            ]
        return data.add(encounter)

    def condition(self, patient_id: str, onset: datetime, code: dict[str, Any]) -> str:
        condition = self.clinic.add(
            {
                "resourceType": "Condition",
                "id": self.next_id("rc-cond"),
                "clinicalStatus": _concept(
                    "http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active"
                ),
                "code": code,
                "subject": {"reference": f"Patient/{patient_id}"},
                "onsetDateTime": _when(onset),
            }
        )
        return str(condition["id"])

    def screening(
        self,
        patient_id: str,
        when: datetime,
        instrument: str,
        total: int,
        encounter_id: str | None = None,
    ) -> None:
        """A score Observation as Synthea writes it, and the QuestionnaireResponse behind it."""
        panel, total_code, items, name = (
            ("44249-1", "44261-6", PHQ9_ITEMS, "PHQ-9")
            if instrument == "phq9"
            else ("69737-5", "70274-6", GAD7_ITEMS, "GAD-7")
        )
        self.clinic.add(
            {
                "resourceType": "Observation",
                "id": self.next_id("rc-obs"),
                "status": "final",
                "category": [
                    _concept(
                        "http://terminology.hl7.org/CodeSystem/observation-category",
                        "survey",
                        "Survey",
                    )
                ],
                "code": _concept(LOINC, total_code, f"{name} total score"),
                "subject": {"reference": f"Patient/{patient_id}"},
                "effectiveDateTime": _when(when),
                "valueQuantity": {
                    "value": total,
                    "unit": "{score}",
                    "system": "http://unitsofmeasure.org",
                    "code": "{score}",
                },
            }
        )
        self.clinic.add(
            questionnaire_response_from_total(
                self.next_id("rc-qr"),
                patient_id,
                when,
                panel,
                items,
                total_code,
                total,
                self.rng,
                encounter_id,
            )
        )

    def fulfilment(self, patient_id: str, when: datetime, job: str, score: int) -> None:
        self.clinic.add(
            {
                "resourceType": "QuestionnaireResponse",
                "id": self.next_id("rc-qr"),
                "questionnaire": FULFILMENT_QUESTIONNAIRE,
                "status": "completed",
                "subject": {"reference": f"Patient/{patient_id}"},
                "authored": _when(when),
                "item": [
                    {
                        "linkId": "job-hired",
                        "text": "What did you most need from your care?",
                        "answer": [{"valueCoding": {"system": JOB_SYSTEM, "code": job}}],
                    },
                    {
                        "linkId": "job-fulfilment",
                        "text": "How well was that done? (1-5)",
                        "answer": [{"valueInteger": score}],
                    },
                ],
            }
        )

    def story(self, person: DemoPerson) -> None:
        rng = self.rng
        start = datetime(2024, 1, 8, 9, tzinfo=UTC) + timedelta(
            days=rng.randrange(0, 300), hours=rng.randrange(0, 8)
        )
        pid = f"rc-pat-{person.index:03d}"
        mid = f"shp-pat-{person.index:03d}"

        def plan_claim(
            when: datetime, klass: str, cpt: str, display: str, reason: dict[str, Any]
        ) -> None:
            if person.in_plan:
                self.encounter(
                    self.plan,
                    mid,
                    when,
                    klass,
                    _concept(CPT, cpt, display),
                    reason=reason,
                    prefix="shp-claim",
                )

        def clinic(*args: Any, **kwargs: Any) -> dict[str, Any] | None:
            return self.encounter(self.clinic, pid, *args, **kwargs) if person.in_clinic else None

        day = timedelta(days=1)
        if person.story == "depression":
            if person.in_clinic:
                self.screening(pid, start, "phq9", 14 + rng.randrange(0, 6))
            f32 = _concept(ICD10, "F32.1", "Major depressive disorder, single episode, moderate")
            cid = self.condition(pid, start, f32) if person.in_clinic else None
            for week in range(1, 5):
                clinic(
                    start + week * 7 * day,
                    "AMB",
                    _concept(SCT, "409063005", "Counseling"),
                    conditions=(cid,) if cid else (),
                )
                plan_claim(start + week * 7 * day, "AMB", "90834", "Psychotherapy, 45 minutes", f32)
            if person.in_clinic:
                for month, score in ((2, 11), (4, 8), (7, 5)):
                    self.screening(
                        pid, start + month * 30 * day, "phq9", score - rng.randrange(0, 3)
                    )
                self.fulfilment(pid, start + 7 * 30 * day, "treat", 4)
        elif person.story == "knee":
            pain = _concept(SCT, "30989003", "Knee pain")
            clinic(
                start, "EMER", _concept(SCT, "50849002", "Emergency room admission"), reason=pain
            )
            plan_claim(
                start,
                "EMER",
                "99284",
                "Emergency department visit",
                _concept(ICD10, "M25.561", "Pain in right knee"),
            )
            oa = _concept(ICD10, "M17.11", "Unilateral primary osteoarthritis, right knee")
            cid = self.condition(pid, start + 10 * day, oa) if person.in_clinic else None
            clinic(
                start + 10 * day,
                "AMB",
                _concept(SCT, "11429006", "Consultation"),
                conditions=(cid,) if cid else (),
            )
            clinic(
                start + 40 * day,
                "IMP",
                _concept(SCT, "305408004", "Admission to surgical department"),
                hours=72,
                conditions=(cid,) if cid else (),
            )
            plan_claim(start + 40 * day, "IMP", "27447", "Total knee arthroplasty", oa)
            for week in range(1, 7):
                when = start + 45 * day + week * 7 * day
                clinic(when, "AMB", _concept(SCT, "91251008", "Physical therapy procedure"))
                plan_claim(when, "AMB", "97110", "Therapeutic exercises", oa)
            clinic(start + 150 * day, "AMB", _concept(SCT, "390906007", "Follow-up encounter"))
            if person.in_clinic:
                self.fulfilment(pid, start + 151 * day, "treat", 5)
        elif person.story == "diabetes":
            e11 = _concept(ICD10, "E11.9", "Type 2 diabetes mellitus without complications")
            clinic(start, "AMB", _concept(SCT, "185349003", "Encounter for check up"))
            cid = self.condition(pid, start + 14 * day, e11) if person.in_clinic else None
            clinic(
                start + 14 * day,
                "AMB",
                _concept(SCT, "185347001", "Encounter for problem"),
                reason=e11,
            )
            for quarter in range(1, 5):
                when = start + quarter * 91 * day
                clinic(
                    when,
                    "AMB",
                    _concept(SCT, "308335008", "Patient encounter procedure"),
                    conditions=(cid,) if cid else (),
                )
                plan_claim(when, "AMB", "99214", "Office visit, established patient", e11)
            clinic(start + 200 * day, "HH", _concept(SCT, "439708006", "Home visit"), reason=e11)
            clinic(
                start + 260 * day, "VR", _concept(SCT, "185389009", "Follow-up visit"), reason=e11
            )
            plan_claim(start + 260 * day, "VR", "99457", "Remote physiologic monitoring", e11)
        elif person.story == "chest_pain":
            chest = _concept(SCT, "29857009", "Chest pain")
            clinic(
                start, "EMER", _concept(SCT, "50849002", "Emergency room admission"), reason=chest
            )
            plan_claim(
                start,
                "EMER",
                "99285",
                "Emergency department visit",
                _concept(ICD10, "R07.9", "Chest pain, unspecified"),
            )
            cad = _concept(
                ICD10, "I25.10", "Atherosclerotic heart disease of native coronary artery"
            )
            cid = self.condition(pid, start, cad) if person.in_clinic else None
            clinic(
                start + timedelta(hours=2),
                "IMP",
                _concept(SCT, "32485007", "Hospital admission"),
                hours=96,
                conditions=(cid,) if cid else (),
            )
            plan_claim(start + day, "IMP", "99223", "Initial hospital care", cad)
            for month in (1, 3, 6, 12):
                clinic(
                    start + month * 30 * day,
                    "AMB",
                    _concept(SCT, "390906007", "Follow-up encounter"),
                    conditions=(cid,) if cid else (),
                )
        elif person.story == "anxiety":
            if person.in_clinic:
                self.screening(pid, start, "gad7", 12 + rng.randrange(0, 6))
            anxiety = _concept(ICD10, "F41.1", "Generalized anxiety disorder")
            for week in range(1, 6):
                clinic(
                    start + week * 7 * day,
                    "AMB",
                    _concept(SCT, "44868003", "Acupuncture"),
                    reason=anxiety,
                )
                plan_claim(
                    start + week * 7 * day,
                    "AMB",
                    "97810",
                    "Acupuncture, initial 15 minutes",
                    anxiety,
                )
            if person.in_clinic:
                self.screening(pid, start + 60 * day, "gad7", 9 - rng.randrange(0, 3))
                self.screening(pid, start + 150 * day, "gad7", 6 - rng.randrange(0, 3))
                self.fulfilment(pid, start + 150 * day, "treat", 3 + rng.randrange(0, 3))
        else:
            for year in range(3):
                when = start + year * 365 * day
                clinic(
                    when,
                    "AMB",
                    _concept(SCT, "162673000", "General examination of patient"),
                    reason=_concept(
                        ICD10, "Z00.00", "Encounter for general adult medical examination"
                    ),
                )
                plan_claim(
                    when,
                    "AMB",
                    "99396",
                    "Preventive visit, established patient, 40-64",
                    _concept(ICD10, "Z00.00", "General adult medical examination"),
                )
                if person.in_clinic:
                    self.screening(pid, when, "phq9", rng.randrange(0, 5))
            if person.in_clinic:
                self.fulfilment(pid, start + 2 * 365 * day, "keep_well", 4)


def questionnaire_response_from_total(
    response_id: str,
    patient_id: str,
    when: datetime,
    panel: str,
    items: tuple[str, ...],
    total_code: str,
    total: int,
    rng: random.Random,
    encounter_id: str | None = None,
) -> dict[str, Any]:
    """Build a QuestionnaireResponse whose item answers add up to a score total.

    The answers sit inside a group item (as LHC-Forms nests them), each a
    LOINC answer Coding on the 0-3 scale.
    """
    total = max(0, min(total, 3 * len(items)))
    scores = [0] * len(items)
    for _ in range(total):
        open_items = [i for i, s in enumerate(scores) if s < 3]
        scores[rng.choice(open_items)] += 1
    answers = [
        {
            "linkId": f"/{panel}/{code}",
            "answer": [
                {
                    "valueCoding": {
                        "system": LOINC,
                        "code": ANSWERS[score][0],
                        "display": ANSWERS[score][1],
                    }
                }
            ],
        }
        for code, score in zip(items, scores, strict=True)
    ]
    response: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "id": response_id,
        "questionnaire": f"http://loinc.org/q/{panel}",
        "status": "completed",
        "subject": {"reference": f"Patient/{patient_id}"},
        "authored": _when(when),
        "item": [
            {"linkId": f"/{panel}", "item": answers},
            {"linkId": f"/{total_code}", "answer": [{"valueInteger": total}]},
        ],
    }
    if encounter_id:
        response["encounter"] = {"reference": f"Encounter/{encounter_id}"}
    return response


def generate(seed: int = 7, people: int = 40) -> dict[str, list[dict[str, Any]]]:
    """The population as resources per source."""
    generator = _Generator(seed, people)
    for person in generator.people():
        if person.in_clinic:
            generator.clinic.add(generator.patient(person, PROVIDER))
        if person.in_plan:
            generator.plan.add(generator.patient(person, PAYER))
        generator.story(person)
    return {PROVIDER: generator.clinic.resources, PAYER: generator.plan.resources}


def write_sample(out: Path, seed: int = 7, people: int = 40) -> dict[str, Path]:
    """Write the population under `out`: NDJSON per type for the clinic, a Bundle for the plan.

    Returns the path to import for each source.
    """
    data = generate(seed, people)
    clinic_dir = out / PROVIDER
    clinic_dir.mkdir(parents=True, exist_ok=True)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for resource in data[PROVIDER]:
        by_type.setdefault(resource["resourceType"], []).append(resource)
    for resource_type, resources in by_type.items():
        with (clinic_dir / f"{resource_type}.ndjson").open("wb") as handle:
            for resource in resources:
                handle.write(orjson.dumps(resource) + b"\n")
    plan_dir = out / PAYER
    plan_dir.mkdir(parents=True, exist_ok=True)
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": "2026-06-30T12:00:00+00:00",
        "entry": [
            {
                "fullUrl": f"https://summit-health-plan.example/fhir/{r['resourceType']}/{r['id']}",
                "resource": r,
            }
            for r in data[PAYER]
        ],
    }
    (plan_dir / "claims-bundle.json").write_bytes(orjson.dumps(bundle, option=orjson.OPT_INDENT_2))
    return {PROVIDER: clinic_dir, PAYER: plan_dir}
