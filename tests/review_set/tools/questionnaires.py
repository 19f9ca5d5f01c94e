"""PHQ-9 / GAD-7 / PHQ-2 item tables and QuestionnaireResponse shapes seen in practice."""

from __future__ import annotations

from common import LOINC
from fhirmk import cc, ref

ANSWERS = {
    0: ("LA6568-5", "Not at all"),
    1: ("LA6569-3", "Several days"),
    2: ("LA6570-1", "More than half the days"),
    3: ("LA6571-9", "Nearly every day"),
}

PHQ9_ITEMS = [
    ("44250-9", "Little interest or pleasure in doing things"),
    ("44255-8", "Feeling down, depressed, or hopeless"),
    ("44259-0", "Trouble falling or staying asleep, or sleeping too much"),
    ("44254-1", "Feeling tired or having little energy"),
    ("44251-7", "Poor appetite or overeating"),
    (
        "44258-2",
        "Feeling bad about yourself - or that you are a failure or have let yourself or your family down",
    ),
    (
        "44252-5",
        "Trouble concentrating on things, such as reading the newspaper or watching television",
    ),
    (
        "44253-3",
        "Moving or speaking so slowly that other people could have noticed. Or the opposite - being so fidgety or restless that you have been moving around a lot more than usual",
    ),
    ("44260-8", "Thoughts that you would be better off dead, or of hurting yourself in some way"),
]
PHQ9_PANEL = ("44249-1", "PHQ-9 quick depression assessment panel [Reported.PHQ]")
PHQ9_TOTAL = ("44261-6", "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]")

GAD7_ITEMS = [
    ("69725-0", "Feeling nervous, anxious or on edge"),
    ("68509-9", "Not being able to stop or control worrying"),
    ("69733-4", "Worrying too much about different things"),
    ("69734-2", "Trouble relaxing"),
    ("69735-9", "Being so restless that it is hard to sit still"),
    ("69689-8", "Becoming easily annoyed or irritable"),
    ("69736-7", "Feeling afraid as if something awful might happen"),
]
GAD7_PANEL = ("69737-5", "Generalized anxiety disorder 7 item (GAD-7)")
GAD7_TOTAL = ("70274-6", "Generalized anxiety disorder 7 item (GAD-7) total score [Reported.PHQ]")

PHQ2_ITEMS = PHQ9_ITEMS[:2]
PHQ2_PANEL = ("55757-9", "Patient Health Questionnaire 2 item (PHQ-2) [Reported]")
PHQ2_TOTAL = ("55758-7", "Patient Health Questionnaire 2 item (PHQ-2) total score [Reported]")


def band_phq9(s: int) -> str:
    return (
        ["minimal", "mild", "moderate", "moderately severe"][min(s // 5, 3)] if s < 20 else "severe"
    )


def band_gad7(s: int) -> str:
    return "minimal" if s <= 4 else "mild" if s <= 9 else "moderate" if s <= 14 else "severe"


def band_phq2(s: int) -> str:
    return "positive" if s >= 3 else "negative"


def qr(
    name: str,
    *,
    panel: tuple[str, str],
    items: list[tuple[str, str]],
    values: list[int | None],
    authored: str,
    enc: str | None = None,
    status: str = "completed",
    total: tuple[str, str] | None = None,
    style: str = "loinc",  # loinc | lhc | nosystem | ordinal | numeric
    suffix: str = "qr",
    questionnaire: str | None = None,
    identifier: str | None = None,
    difficulty: int | None = None,
) -> dict:
    out_items = []
    for i, ((code, text), v) in enumerate(zip(items, values, strict=False)):
        if style == "lhc":
            link = f"/{code}"
        elif style == "numeric":
            link = str(i + 1)
        else:
            link = code
        item: dict = {"linkId": link, "text": text}
        if v is not None:
            la, disp = ANSWERS[v]
            coding: dict = {"system": LOINC, "code": la, "display": disp}
            if style == "nosystem":
                coding = {"code": la, "display": disp}
            if style == "ordinal":
                coding["extension"] = [
                    {
                        "url": "http://hl7.org/fhir/StructureDefinition/ordinalValue",
                        "valueDecimal": v,
                    }
                ]
            item["answer"] = [{"valueCoding": coding}]
        out_items.append(item)
    if difficulty is not None:
        diff = {
            0: ("LA6572-7", "Not difficult at all"),
            1: ("LA6573-5", "Somewhat difficult"),
            2: ("LA6575-0", "Very difficult"),
            3: ("LA6574-3", "Extremely difficult"),
        }[difficulty]
        out_items.append(
            {
                "linkId": "69722-7" if style != "lhc" else "/69722-7",
                "text": "How difficult have these problems made it for you to do your work, take care of things at home, or get along with other people?",
                "answer": [{"valueCoding": {"system": LOINC, "code": diff[0], "display": diff[1]}}],
            }
        )
    if total is not None and all(v is not None for v in values):
        out_items.append(
            {
                "linkId": total[0] if style != "lhc" else f"/{total[0]}",
                "text": total[1],
                "answer": [{"valueInteger": sum(v for v in values if v is not None)}],
            }
        )
    r: dict = {
        "resourceType": "QuestionnaireResponse",
        "id": f"{name}-{suffix}",
        "questionnaire": questionnaire or f"http://loinc.org/q/{panel[0]}",
        "status": status,
        "subject": ref("Patient", f"{name}-pat"),
        "authored": authored,
        "author": ref("Patient", f"{name}-pat"),
        "item": out_items,
    }
    if identifier:
        r["identifier"] = {"system": "urn:oid:2.16.840.1.113883.19.5.99999.7", "value": identifier}
    if enc:
        r["encounter"] = ref("Encounter", enc)
    return r


def total_obs(
    name: str,
    suffix: str,
    total: tuple[str, str],
    score: int,
    *,
    when: str,
    enc: str | None = None,
    as_quantity: bool = False,
    status: str = "final",
    has_member: list | None = None,
) -> dict:
    o: dict = {
        "resourceType": "Observation",
        "id": f"{name}-{suffix}",
        "status": status,
        "category": [cc("http://terminology.hl7.org/CodeSystem/observation-category", "survey")],
        "code": cc(LOINC, total[0], total[1]),
        "subject": ref("Patient", f"{name}-pat"),
        "effectiveDateTime": when,
    }
    if enc:
        o["encounter"] = ref("Encounter", enc)
    if as_quantity:
        o["valueQuantity"] = {
            "value": score,
            "unit": "{score}",
            "system": "http://unitsofmeasure.org",
            "code": "{score}",
        }
    else:
        o["valueInteger"] = score
    if has_member:
        o["hasMember"] = has_member
    return o
