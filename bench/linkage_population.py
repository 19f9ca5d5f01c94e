"""A labelled linkage set: one population seen by a provider and by a payer.

The provider's Patients carry an MRN, the payer's a member id: no identifier
system in common, as is usual. The payer's copy of each member is made from the
same person with the errors and changes real records have, each drawn on its own:
typos in names, nicknames, day and month swapped, a digit wrong in the birth
date, missing fields, a surname changed at marriage, a move, a new phone. And the
people that make matching hard are there on purpose: twins (one birth date, one
address, one phone), fathers and sons with one name and address, families sharing
a phone. Deterministic for a seed; synthetic, no real person.

`truth` maps each Patient (source, id) to the person it is, for precision and recall.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

PROVIDER = "linkage-provider"
PAYER = "linkage-payer"
MRN = "urn:oid:2.16.840.1.113883.19.5.99999.2"
MEMBER = "https://payer.example/member-id"

# Surnames from very common to rare: a frequency-aware matcher must weigh them apart.
COMMON_FAMILY = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis"]
FAMILY = [
    *COMMON_FAMILY,
    "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas",
    "Taylor", "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris",
    "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King",
    "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker",
    "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Okafor", "Lindqvist",
    "Tanaka", "Kowalski", "Papadopoulos", "Haddad", "Novak", "Fitzgerald", "Abernathy",
    "Quispe", "Achterberg", "Vukovic", "Oyelaran", "Thorsdottir", "Marchetti", "Szabo",
    "Delacroix", "Iwu", "Bjornstad", "Castellanos", "Ferreira", "Mwangi", "Rasmussen",
]  # fmt: skip
FEMALE = [
    "Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica", "Sarah",
    "Karen", "Nancy", "Margaret", "Lisa", "Betty", "Sandra", "Ashley", "Katherine", "Deborah",
    "Rebecca", "Victoria", "Abigail", "Amara", "Ingrid", "Yuki", "Zofia", "Leilani", "Saoirse",
]  # fmt: skip
MALE = [
    "James", "Robert", "John", "Michael", "William", "David", "Richard", "Joseph", "Thomas",
    "Charles", "Christopher", "Daniel", "Matthew", "Anthony", "Edward", "Steven", "Andrew",
    "Samuel", "Benjamin", "Nicholas", "Jonathan", "Alexander", "Chidi", "Lars", "Kenji", "Tomasz",
]  # fmt: skip
NICKNAMES = {
    "Robert": "Bob", "William": "Bill", "Elizabeth": "Liz", "Katherine": "Kate", "James": "Jim",
    "Michael": "Mike", "Margaret": "Peggy", "Richard": "Rick", "Joseph": "Joe", "Thomas": "Tom",
    "Charles": "Charlie", "Jennifer": "Jen", "Patricia": "Pat", "Christopher": "Chris",
    "Daniel": "Dan", "Matthew": "Matt", "Anthony": "Tony", "Edward": "Ted", "Susan": "Sue",
    "Deborah": "Debbie", "Alexander": "Alex", "Benjamin": "Ben", "Samuel": "Sam",
    "Nicholas": "Nick", "Jonathan": "Jon", "Andrew": "Andy", "Steven": "Steve",
    "Rebecca": "Becky", "Victoria": "Vicky", "Abigail": "Abby",
}  # fmt: skip
STREETS = [
    "Elm", "Oak", "Main", "Maple", "Cedar", "Pine", "Lake", "Hill", "Park", "Walnut",
    "Willow", "Birch", "Sunset", "River", "Highland", "Church", "Mill", "Spring",
]  # fmt: skip
SCT = "http://snomed.info/sct"
CPT = "http://www.ama-assn.org/go/cpt"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
CLAIM_TYPE = "http://terminology.hl7.org/CodeSystem/claim-type"
TOWNS = [(f"Town{n:02d}", f"{97000 + n * 7:05d}") for n in range(60)]


@dataclass
class Person:
    index: int
    family: str
    given: str
    gender: str
    birth: date
    line: str
    town: tuple[str, str]
    phone: str
    email: str | None
    # Elements the record leaves out (a payer's copy with gaps).
    missing: frozenset[str] = frozenset()


@dataclass
class LinkageSet:
    provider: list[dict[str, Any]] = field(default_factory=list)
    payer: list[dict[str, Any]] = field(default_factory=list)
    truth: dict[tuple[str, str], int] = field(default_factory=dict)
    # What made each payer copy differ from its person, for reading the errors.
    changes: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def true_pairs(self) -> set[tuple[tuple[str, str], tuple[str, str]]]:
        return cross_source_pairs(self.truth.items())


def cross_source_pairs(
    membership: Iterable[tuple[tuple[str, str], object]],
) -> set[tuple[tuple[str, str], tuple[str, str]]]:
    """(provider Patient, payer Patient) pairs that belong to one person, from
    ((source, id), person) memberships."""
    by_person: dict[object, list[tuple[str, str]]] = {}
    for key, person in membership:
        by_person.setdefault(person, []).append(key)
    return {
        (a, b)
        for keys in by_person.values()
        for a in keys
        for b in keys
        if a[0] == PROVIDER and b[0] == PAYER
    }


def generate(people: int, seed: int = 7) -> LinkageSet:
    rng = random.Random(seed)
    population = _population(rng, people)
    found = LinkageSet()
    for person in population:
        key = (PROVIDER, f"mrn-{person.index:07d}")
        found.provider.append(_patient(key[1], MRN, f"M{person.index:07d}", person))
        found.truth[key] = person.index
    # The payer covers 70% of the provider's patients, and members the provider never saw.
    members = [p for p in population if rng.random() < 0.7]
    members += _population(rng, people // 10, start=people, households=False)
    for person in members:
        key = (PAYER, f"mem-{person.index:07d}")
        copy, changes = _as_payer_sees(rng, person)
        found.payer.append(_patient(key[1], MEMBER, f"P{person.index * 13:09d}", copy))
        found.truth[key] = person.index
        found.changes[key] = changes
    return found


def _population(
    rng: random.Random, count: int, start: int = 0, households: bool = True
) -> list[Person]:
    people: list[Person] = []
    index = start
    while len(people) < count:
        family = _surname(rng)
        town = rng.choice(TOWNS)
        line = f"{rng.randint(1, 9999)} {rng.choice(STREETS)} St"
        phone = f"503{rng.randint(2000000, 9999999)}"
        head = _someone(rng, index, family, line, town, phone)
        people.append(head)
        index += 1
        if not households:
            continue
        kind = rng.random()
        if kind < 0.03:  # twins: one birth date, one address and phone, other given names
            twin = _someone(rng, index, family, line, town, phone)
            twin.birth = head.birth
            while twin.given == head.given:
                twin.given = rng.choice(FEMALE if twin.gender == "female" else MALE)
            people.append(twin)
            index += 1
        elif kind < 0.06 and head.gender == "male":  # father and son: one name, one address
            son = _someone(rng, index, family, line, town, phone)
            son.given, son.gender = head.given, "male"
            son.birth = head.birth + timedelta(days=rng.randint(22 * 365, 38 * 365))
            people.append(son)
            index += 1
        elif kind < 0.15:  # a family sharing the home phone
            for _ in range(rng.randint(1, 3)):
                people.append(_someone(rng, index, family, line, town, phone))
                index += 1
    return people[:count]


def _someone(
    rng: random.Random, index: int, family: str, line: str, town: tuple[str, str], phone: str
) -> Person:
    gender = rng.choice(["female", "male"])
    given = rng.choice(FEMALE if gender == "female" else MALE)
    birth = date(1930, 1, 1) + timedelta(days=rng.randint(0, 80 * 365))
    email = f"{given.lower()}.{family.lower()}{rng.randint(1, 999)}@mail.example"
    return Person(
        index,
        family,
        given,
        gender,
        birth,
        line,
        town,
        phone,
        email if rng.random() < 0.5 else None,
    )


def _surname(rng: random.Random) -> str:
    # A few surnames are very common, most are rare (roughly Zipf).
    if rng.random() < 0.35:
        return rng.choice(COMMON_FAMILY)
    return rng.choice(FAMILY)


def _as_payer_sees(rng: random.Random, person: Person) -> tuple[Person, list[str]]:
    copy = Person(**person.__dict__)
    changes: list[str] = []

    def chance(p: float, what: str) -> bool:
        if rng.random() < p:
            changes.append(what)
            return True
        return False

    if chance(0.08, "family typo"):
        copy.family = _typo(rng, copy.family)
    if copy.gender == "female" and chance(0.06, "married name"):
        copy.family = _surname(rng)
    if copy.given in NICKNAMES and chance(0.25, "nickname"):
        copy.given = NICKNAMES[copy.given]
    elif chance(0.06, "given typo"):
        copy.given = _typo(rng, copy.given)
    swappable = copy.birth.day <= 12 and copy.birth.day != copy.birth.month
    if swappable and chance(0.04, "day/month swap"):
        copy.birth = date(copy.birth.year, copy.birth.day, copy.birth.month)
    elif chance(0.03, "birth date digit"):
        copy.birth = _one_digit_off(rng, copy.birth)
    if chance(0.15, "moved"):
        copy.town = rng.choice(TOWNS)
        copy.line = f"{rng.randint(1, 9999)} {rng.choice(STREETS)} Ave"
    if chance(0.2, "new phone"):
        copy.phone = f"971{rng.randint(2000000, 9999999)}"
    gaps = [
        gap
        for gap, p in (("gender", 0.05), ("address", 0.1), ("telecom", 0.15), ("birthDate", 0.02))
        if chance(p, f"no {gap}")
    ]
    copy.missing = frozenset(gaps)
    return copy, changes


def _one_digit_off(rng: random.Random, born: date) -> date:
    """The same date with one digit of the day typed wrong (still a real date)."""
    tens, units = divmod(born.day, 10)
    options = [tens * 10 + d for d in range(10) if d != units and 1 <= tens * 10 + d <= 28]
    options += [d * 10 + units for d in range(3) if d != tens and 1 <= d * 10 + units <= 28]
    return born.replace(day=rng.choice(options)) if options else born


def _typo(rng: random.Random, text: str) -> str:
    i = rng.randrange(1, len(text)) if len(text) > 1 else 0
    kind = rng.random()
    if kind < 0.4 and len(text) > 3:
        return text[:i] + text[i + 1 :]  # a letter dropped
    if kind < 0.7 and i < len(text) - 1:
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]  # two letters swapped
    return text[:i] + rng.choice("aeiourstn") + text[i + 1 :]  # a letter replaced


def _patient(pid: str, system: str, value: str, person: Person) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": system, "value": value}],
        "name": [{"use": "official", "family": person.family, "given": [person.given]}],
        "gender": person.gender,
        "birthDate": person.birth.isoformat(),
        "address": [
            {
                "use": "home",
                "line": [person.line],
                "city": person.town[0],
                "postalCode": person.town[1],
            }
        ],
        "telecom": [{"system": "phone", "value": person.phone}],
    }
    if person.email:
        resource["telecom"].append({"system": "email", "value": person.email})
    for gap in person.missing:
        del resource[gap]
    return resource


# A knee physiotherapy session as the provider records it and as the payer pays it.
def physio_visit(eid: str, patient: str, day: str) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": eid,
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "type": [{"coding": [{"system": SCT, "code": "91251008", "display": "Physical therapy"}]}],
        "reasonCode": [{"coding": [{"system": ICD, "code": "M17.11"}]}],
        "subject": {"reference": f"Patient/{patient}"},
        "period": {"start": f"{day}T09:00:00Z", "end": f"{day}T10:00:00Z"},
    }


def physio_claim(cid: str, patient: str, day: str) -> dict[str, Any]:
    return {
        "resourceType": "ExplanationOfBenefit",
        "id": cid,
        "status": "active",
        "type": {"coding": [{"system": CLAIM_TYPE, "code": "professional"}]},
        "use": "claim",
        "patient": {"reference": f"Patient/{patient}"},
        "billablePeriod": {"start": day, "end": day},
        "created": f"{day}T18:00:00Z",
        "insurer": {"display": "Plan"},
        "provider": {"display": "Clinic"},
        "outcome": "complete",
        "diagnosis": [
            {
                "sequence": 1,
                "diagnosisCodeableConcept": {"coding": [{"system": ICD, "code": "M17.11"}]},
            }
        ],
        "insurance": [{"focal": True, "coverage": {"display": "Plan coverage"}}],
        "item": [
            {
                "sequence": 1,
                "productOrService": {"coding": [{"system": CPT, "code": "97110"}]},
                "servicedDate": day,
            }
        ],
    }
