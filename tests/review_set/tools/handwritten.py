"""Hand-written review cases in real-world shapes.

Run from anywhere: python tests/review_set/tools/handwritten.py
Writes cases/rs-001.json ... and tools/expected_handwritten.toml (merged by assemble.py).
The expected answers here are a clinician's judgment, written beside each case."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from claims import claim, eob, line, payer_context
from common import (
    CDT,
    CPT,
    CVX,
    HCPCS,
    HERE,
    ICD10,
    LOINC,
    NDC,
    PCS,
    RXNORM,
    SCT,
    toml_case,
    write_case,
)
from fhirmk import (
    cc,
    condition,
    encounter,
    medreq,
    observation,
    patient,
    procedure,
    qty,
    ref,
    report,
)
from questionnaires import (
    GAD7_ITEMS,
    GAD7_PANEL,
    GAD7_TOTAL,
    PHQ2_ITEMS,
    PHQ2_PANEL,
    PHQ2_TOTAL,
    PHQ9_ITEMS,
    PHQ9_PANEL,
    PHQ9_TOTAL,
    band_phq9,
    qr,
    total_obs,
)

CASES = []


def case(fn):
    CASES.append(fn)
    return fn


def T(code, display):  # SNOMED encounter type
    return [cc(SCT, code, display)]


CHECKUP = ("185349003", "Encounter for check up (procedure)")
PROBLEM = ("185347001", "Encounter for problem (procedure)")
WELL = ("410620009", "Well child visit (procedure)")
FOLLOWUP = ("390906007", "Follow-up encounter (procedure)")
OFFICE = ("308335008", "Patient encounter procedure (procedure)")


def wellness_enc(
    n,
    start,
    reason=("Z00.00", "Encounter for general adult medical examination without abnormal findings"),
):
    return encounter(
        n,
        start=start,
        end=start[:11] + "10:30:00-05:00",
        types=T(*CHECKUP),
        reasons=[cc(ICD10, *reason)],
    )


# ---------------------------------------------------------------- questionnaires
@case
def phq9_item9_low_total(n):
    vals = [0, 1, 0, 1, 0, 0, 0, 0, 1]
    e = wellness_enc(n, "2026-03-10T09:00:00-05:00")
    return [
        qr(
            n,
            panel=PHQ9_PANEL,
            items=PHQ9_ITEMS,
            values=vals,
            authored="2026-03-10T09:05:00-05:00",
            enc=e["id"],
            total=PHQ9_TOTAL,
        ),
        patient(n),
        e,
    ], {
        "job": "diagnose",
        "flags": ["self_harm_risk"],
        "instrument": "PHQ-9",
        "score": 3,
        "band": band_phq9(3),
        "rationale": "Depression screen at annual exam, no known depression; total 3 is minimal but item 9 (thoughts of self-harm) is positive, which always needs same-day safety assessment",
    }


def _phq9_screen(
    n, vals, style="loinc", total=True, authored="2026-04-02T10:10:00-04:00", extra=None
):
    e = encounter(
        n,
        start=authored[:11] + "10:00:00-04:00",
        end=authored[:11] + "10:40:00-04:00",
        types=T(*CHECKUP),
        reasons=[cc(ICD10, "Z13.31", "Encounter for screening for depression")],
    )
    q = qr(
        n,
        panel=PHQ9_PANEL,
        items=PHQ9_ITEMS,
        values=vals,
        authored=authored,
        enc=e["id"],
        total=PHQ9_TOTAL if total else None,
        style=style,
        difficulty=1 if sum(vals) else 0,
    )
    return [q, patient(n, gender="male", birth="1988-02-01"), e] + (extra or [])


@case
def phq9_minimal(n):
    vals = [0, 0, 1, 1, 0, 0, 0, 0, 0]
    return _phq9_screen(n, vals), {
        "job": "diagnose",
        "instrument": "PHQ-9",
        "score": 2,
        "band": "minimal",
        "rationale": "PHQ-9 depression screen (Z13.31) in a patient with no depression history; total 2 minimal; a screen is case-finding, i.e. finding out whether something is wrong",
    }


@case
def phq9_mild_lhc(n):
    vals = [1, 1, 2, 1, 1, 0, 1, 0, 0]
    return _phq9_screen(n, vals, style="lhc", total=False), {
        "job": "diagnose",
        "instrument": "PHQ-9",
        "score": 7,
        "band": "mild",
        "rationale": "PHQ-9 screen (LHC-Forms style '/code' linkIds, no total item: score computed from answers) with no known depression; 7 = mild",
    }


@case
def phq9_moderate(n):
    vals = [2, 2, 1, 2, 1, 1, 2, 1, 0]
    return _phq9_screen(n, vals), {
        "job": "diagnose",
        "instrument": "PHQ-9",
        "score": 12,
        "band": "moderate",
        "rationale": "PHQ-9 screen, no prior depression; 12 = moderate, item 9 zero",
    }


@case
def phq9_modsevere_ordinal(n):
    vals = [2, 3, 2, 2, 2, 2, 2, 2, 0]
    return _phq9_screen(n, vals, style="ordinal", total=False), {
        "job": "diagnose",
        "instrument": "PHQ-9",
        "score": 17,
        "band": "moderately severe",
        "rationale": "PHQ-9 screen with ordinalValue extensions on the answer codings, no total item; 17 = moderately severe, item 9 zero",
    }


@case
def phq9_severe_item9(n):
    vals = [3, 3, 3, 2, 2, 3, 2, 2, 2]
    e = encounter(
        n,
        start="2026-05-20T14:00:00-05:00",
        end="2026-05-20T15:10:00-05:00",
        types=T(*PROBLEM),
        reasons=[
            cc(
                ICD10,
                "R45.89",
                "Other symptoms and signs involving emotional state",
                text="low mood for 2 months",
            )
        ],
    )
    dx = condition(
        n,
        "dx",
        cc(
            ICD10,
            "F32.2",
            "Major depressive disorder, single episode, severe without psychotic features",
        ),
        recorded="2026-05-20T15:00:00-05:00",
        enc=e["id"],
    )
    return [
        qr(
            n,
            panel=PHQ9_PANEL,
            items=PHQ9_ITEMS,
            values=vals,
            authored="2026-05-20T14:05:00-05:00",
            enc=e["id"],
            total=PHQ9_TOTAL,
        ),
        patient(n, birth="1996-09-30"),
        e,
        dx,
    ], {
        "job": "diagnose",
        "flags": ["self_harm_risk"],
        "instrument": "PHQ-9",
        "score": 22,
        "band": "severe",
        "rationale": "PHQ-9 done in a visit for new low mood, leading to a new diagnosis of severe MDD; item 9 answered 'more than half the days'",
    }


@case
def phq9_nosystem(n):
    vals = [1, 2, 1, 1, 0, 1, 0, 0, 0]
    return _phq9_screen(n, vals, style="nosystem", total=False), {
        "job": "diagnose",
        "instrument": "PHQ-9",
        "score": 6,
        "band": "mild",
        "rationale": "PHQ-9 screen whose answers are valueCoding with LOINC answer codes (LA6568-5 etc.) but no system; still unambiguously PHQ-9 answers, total 6 mild",
    }


@case
def phq9_numeric_linkids(n):
    vals = [0, 1, 1, 1, 1, 0, 1, 0, 0]
    return _phq9_screen(n, vals, style="numeric", total=False), {
        "job": "diagnose",
        "instrument": "PHQ-9",
        "score": 5,
        "band": "mild",
        "rationale": "PHQ-9 with EHR-style numeric linkIds '1'..'9' (only the LOINC questionnaire canonical and item texts identify it); total 5 is the mild lower boundary",
    }


@case
def phq9_boundary_20(n):
    vals = [2, 3, 2, 3, 2, 2, 3, 3, 0]
    return _phq9_screen(n, vals), {
        "job": "diagnose",
        "instrument": "PHQ-9",
        "score": 20,
        "band": "severe",
        "rationale": "PHQ-9 screen total exactly 20: lower boundary of severe; item 9 zero",
    }


@case
def phq9_monitor_known_mdd(n):
    vals = [1, 2, 1, 2, 1, 1, 1, 1, 0]
    e = encounter(
        n,
        start="2026-06-11T09:00:00-04:00",
        end="2026-06-11T09:25:00-04:00",
        types=T(*FOLLOWUP),
        reasons=[cc(ICD10, "F33.1", "Major depressive disorder, recurrent, moderate")],
    )
    dx = condition(
        n,
        "mdd",
        cc(ICD10, "F33.1", "Major depressive disorder, recurrent, moderate"),
        recorded="2025-01-15T10:00:00-05:00",
        onset="2024-11-01",
        category="problem-list-item",
    )
    rx = medreq(
        n,
        "rx",
        cc(RXNORM, "312938", "sertraline 100 MG Oral Tablet"),
        when="2025-01-15T10:20:00-05:00",
        reasons=[cc(ICD10, "F33.1", "Major depressive disorder, recurrent, moderate")],
    )
    return [
        qr(
            n,
            panel=PHQ9_PANEL,
            items=PHQ9_ITEMS,
            values=vals,
            authored="2026-06-11T09:02:00-04:00",
            enc=e["id"],
            total=PHQ9_TOTAL,
        ),
        patient(n, birth="1979-12-12"),
        e,
        dx,
        rx,
    ], {
        "job": "keep_well",
        "instrument": "PHQ-9",
        "score": 10,
        "band": "moderate",
        "rationale": "PHQ-9 used to monitor recurrent MDD diagnosed 18 months earlier and on sertraline: measurement-based follow-up of a known condition, not case-finding",
    }


@case
def phq9_entered_in_error(n):
    vals = [0, 0, 0, 0, 0, 0, 0, 0, 0]
    q = qr(
        n,
        panel=PHQ9_PANEL,
        items=PHQ9_ITEMS,
        values=vals,
        authored="2026-02-03T11:00:00-05:00",
        total=PHQ9_TOTAL,
        status="entered-in-error",
    )
    return [q, patient(n)], {
        "job": "excluded",
        "rationale": "QuestionnaireResponse status entered-in-error (recorded against the wrong patient/form); must not appear in the journey",
    }


@case
def phq9_in_progress(n):
    vals = [1, 1, 0, 2, 1, None, None, None, None]
    return [
        qr(
            n,
            panel=PHQ9_PANEL,
            items=PHQ9_ITEMS,
            values=vals,
            authored="2026-04-09T08:15:00-04:00",
            status="in-progress",
        ),
        patient(n, birth="2001-01-20"),
    ], {
        "job": "diagnose",
        "flags": ["incomplete"],
        "instrument": "PHQ-9",
        "rationale": "PHQ-9 screen started (5 of 9 items answered, status in-progress): a depression screen, but no total can be given",
    }


@case
def phq9_completed_missing_item(n):
    vals = [1, 1, 1, 1, 0, 1, 1, None, 0]
    e = wellness_enc(n, "2026-07-01T09:00:00-05:00")
    return [
        qr(
            n,
            panel=PHQ9_PANEL,
            items=PHQ9_ITEMS,
            values=vals,
            authored="2026-07-01T09:04:00-05:00",
            enc=e["id"],
        ),
        patient(n, gender="male", birth="1958-03-03"),
        e,
    ], {
        "job": "diagnose",
        "flags": ["incomplete"],
        "instrument": "PHQ-9",
        "rationale": "Status says completed but item 8 is unanswered: the screen is incomplete, so no total (prorating exists in the literature but a sent record should not invent one)",
    }


@case
def phq9_item9_only_in_progress(n):
    vals = [None, None, None, None, None, None, None, None, 3]
    q = qr(
        n,
        panel=PHQ9_PANEL,
        items=PHQ9_ITEMS,
        values=vals,
        authored="2026-08-14T16:40:00-05:00",
        status="in-progress",
    )
    return [q, patient(n, birth="2004-06-06")], {
        "job": "diagnose",
        "flags": ["self_harm_risk", "incomplete"],
        "instrument": "PHQ-9",
        "rationale": "Partly filled PHQ-9 whose only answer is item 9 = nearly every day: incomplete (no score) but self-harm risk must be flagged whatever the total",
    }


def _amended_pair(n, focal_is_old):
    old_vals = [1, 2, 1, 2, 1, 1, 2, 1, 0]  # 11
    new_vals = [1, 2, 1, 2, 1, 1, 2, 1, 1]  # 12, item 9 corrected to 1
    e = wellness_enc(n, "2026-09-09T09:00:00-05:00")
    old = qr(
        n,
        panel=PHQ9_PANEL,
        items=PHQ9_ITEMS,
        values=old_vals,
        authored="2026-09-09T09:06:00-05:00",
        enc=e["id"],
        total=PHQ9_TOTAL,
        suffix="qr-original",
        identifier=f"{n}-form-1",
    )
    new = qr(
        n,
        panel=PHQ9_PANEL,
        items=PHQ9_ITEMS,
        values=new_vals,
        authored="2026-09-09T11:30:00-05:00",
        enc=e["id"],
        total=PHQ9_TOTAL,
        suffix="qr-amended",
        identifier=f"{n}-form-1",
        status="amended",
    )
    prov = {
        "resourceType": "Provenance",
        "id": f"{n}-prov",
        "target": [ref("QuestionnaireResponse", new["id"])],
        "recorded": "2026-09-09T11:30:00-05:00",
        "activity": cc(
            "http://terminology.hl7.org/CodeSystem/v3-DataOperation", "UPDATE", "revise"
        ),
        "agent": [{"who": ref("Patient", f"{n}-pat")}],
        "entity": [{"role": "revision", "what": ref("QuestionnaireResponse", old["id"])}],
    }
    first = old if focal_is_old else new
    second = new if focal_is_old else old
    return [first, patient(n, birth="1990-10-10"), e, second, prov]


@case
def phq9_superseded_original(n):
    return _amended_pair(n, True), {
        "job": "diagnose",
        "flags": ["superseded"],
        "instrument": "PHQ-9",
        "score": 11,
        "band": "moderate",
        "rationale": "Original PHQ-9 (11, item 9 = 0) later amended the same day (same form identifier; Provenance revision; amended copy has item 9 = 1): this earlier version is superseded",
    }


@case
def phq9_amended_current(n):
    return _amended_pair(n, False), {
        "job": "diagnose",
        "flags": ["self_harm_risk"],
        "instrument": "PHQ-9",
        "score": 12,
        "band": "moderate",
        "rationale": "Amended PHQ-9 (status amended) is the current version: total 12 moderate and the corrected item 9 = 1 is a positive self-harm answer",
    }


@case
def gad7_minimal(n):
    vals = [1, 0, 1, 0, 0, 1, 0]
    e = wellness_enc(n, "2026-01-12T08:30:00-05:00")
    return [
        qr(
            n,
            panel=GAD7_PANEL,
            items=GAD7_ITEMS,
            values=vals,
            authored="2026-01-12T08:35:00-05:00",
            enc=e["id"],
            total=GAD7_TOTAL,
        ),
        patient(n, birth="1983-07-07"),
        e,
    ], {
        "job": "diagnose",
        "instrument": "GAD-7",
        "score": 3,
        "band": "minimal",
        "rationale": "GAD-7 anxiety screen at an annual exam, no anxiety history; 3 = minimal",
    }


@case
def gad7_mild(n):
    vals = [1, 1, 1, 1, 0, 1, 1]
    return [
        qr(
            n,
            panel=GAD7_PANEL,
            items=GAD7_ITEMS,
            values=vals,
            authored="2026-02-20T13:00:00-05:00",
            style="lhc",
        ),
        patient(n, birth="1999-03-15"),
    ], {
        "job": "diagnose",
        "instrument": "GAD-7",
        "score": 6,
        "band": "mild",
        "rationale": "Stand-alone GAD-7 (patient portal, no encounter, LHC-Forms linkIds, no total item), no known anxiety disorder; 6 = mild",
    }


@case
def gad7_moderate(n):
    vals = [2, 2, 2, 1, 1, 2, 1]
    e = encounter(
        n,
        start="2026-03-03T15:00:00-05:00",
        end="2026-03-03T15:30:00-05:00",
        types=T(*PROBLEM),
        reasons=[cc(SCT, "48694002", "Anxiety (finding)")],
    )
    return [
        qr(
            n,
            panel=GAD7_PANEL,
            items=GAD7_ITEMS,
            values=vals,
            authored="2026-03-03T15:05:00-05:00",
            enc=e["id"],
            total=GAD7_TOTAL,
        ),
        patient(n, gender="male", birth="1992-11-11"),
        e,
    ], {
        "job": "diagnose",
        "instrument": "GAD-7",
        "score": 11,
        "band": "moderate",
        "rationale": "GAD-7 in a visit for new anxiety symptoms: assessment of a new complaint; 11 = moderate",
    }


@case
def gad7_severe(n):
    vals = [3, 3, 3, 2, 2, 2, 3]
    return [
        qr(
            n,
            panel=GAD7_PANEL,
            items=GAD7_ITEMS,
            values=vals,
            authored="2026-04-14T10:00:00-05:00",
            style="nosystem",
            total=GAD7_TOTAL,
        ),
        patient(n, birth="1975-05-05"),
    ], {
        "job": "diagnose",
        "instrument": "GAD-7",
        "score": 18,
        "band": "severe",
        "rationale": "GAD-7 with system-less LOINC answer codes and a total item, no anxiety history; 18 = severe",
    }


@case
def gad7_in_progress(n):
    vals = [2, 1, 2, 1, None, None, None]
    return [
        qr(
            n,
            panel=GAD7_PANEL,
            items=GAD7_ITEMS,
            values=vals,
            authored="2026-05-05T09:00:00-05:00",
            status="in-progress",
        ),
        patient(n, birth="1987-08-08"),
    ], {
        "job": "diagnose",
        "flags": ["incomplete"],
        "instrument": "GAD-7",
        "rationale": "GAD-7 in-progress with 4 of 7 items answered: an anxiety screen, incomplete, no score",
    }


@case
def gad7_monitor_known_gad(n):
    vals = [1, 1, 2, 1, 0, 1, 0]
    dx = condition(
        n,
        "gad",
        cc(ICD10, "F41.1", "Generalized anxiety disorder"),
        recorded="2024-10-01T10:00:00-04:00",
        category="problem-list-item",
    )
    e = encounter(
        n,
        cls="VR",
        start="2026-06-06T10:00:00-04:00",
        end="2026-06-06T10:20:00-04:00",
        types=T(*FOLLOWUP),
        reasons=[cc(ICD10, "F41.1", "Generalized anxiety disorder")],
    )
    return [
        qr(
            n,
            panel=GAD7_PANEL,
            items=GAD7_ITEMS,
            values=vals,
            authored="2026-06-06T10:01:00-04:00",
            enc=e["id"],
            total=GAD7_TOTAL,
        ),
        patient(n, birth="1985-12-01"),
        e,
        dx,
    ], {
        "job": "keep_well",
        "instrument": "GAD-7",
        "score": 6,
        "band": "mild",
        "rationale": "GAD-7 at a telehealth follow-up for generalized anxiety disorder known since 2024: monitoring a known condition",
    }


@case
def phq2_negative(n):
    vals = [0, 1]
    e = wellness_enc(n, "2026-02-02T09:00:00-05:00")
    return [
        qr(
            n,
            panel=PHQ2_PANEL,
            items=PHQ2_ITEMS,
            values=vals,
            authored="2026-02-02T09:03:00-05:00",
            enc=e["id"],
            total=PHQ2_TOTAL,
        ),
        patient(n, birth="1960-04-04"),
        e,
    ], {
        "job": "diagnose",
        "instrument": "PHQ-2",
        "score": 1,
        "band": "negative",
        "ambiguous": True,
        "rationale": "Routine PHQ-2 (55757-9) at an annual exam, negative (<3). Judged diagnose as a case-finding screen; a clinician could equally call routine screening of a well person keep_well",
    }


@case
def phq2_positive(n):
    vals = [2, 2]
    return [
        qr(
            n,
            panel=PHQ2_PANEL,
            items=PHQ2_ITEMS,
            values=vals,
            authored="2026-03-12T11:00:00-05:00",
            total=PHQ2_TOTAL,
        ),
        patient(n, gender="male", birth="1970-01-01"),
    ], {
        "job": "diagnose",
        "instrument": "PHQ-2",
        "score": 4,
        "band": "positive",
        "rationale": "PHQ-2 total 4 (>=3 positive): depression screen that should prompt a full PHQ-9",
    }


@case
def unknown_questionnaire(n):
    q = {
        "resourceType": "QuestionnaireResponse",
        "id": f"{n}-qr",
        "questionnaire": "https://forms.example.org/fhir/Questionnaire/clinic-visit-feedback-v3",
        "status": "completed",
        "subject": ref("Patient", f"{n}-pat"),
        "authored": "2026-04-22T17:00:00-05:00",
        "item": [
            {
                "linkId": "q1",
                "text": "How easy was it to book your appointment?",
                "answer": [{"valueInteger": 4}],
            },
            {
                "linkId": "q2",
                "text": "Would you recommend this clinic?",
                "answer": [{"valueBoolean": True}],
            },
            {
                "linkId": "q3",
                "text": "Comments",
                "answer": [{"valueString": "Parking was hard to find."}],
            },
        ],
    }
    return [q, patient(n)], {
        "job": "unclassified",
        "rationale": "Clinic satisfaction survey from an unknown questionnaire: not clinical care, no basis to name a job",
    }


@case
def unknown_questionnaire_clinical_text(n):
    q = {
        "resourceType": "QuestionnaireResponse",
        "id": f"{n}-qr",
        "questionnaire": "Questionnaire/intake-2026",
        "status": "completed",
        "subject": ref("Patient", f"{n}-pat"),
        "authored": "2026-05-02T08:00:00-05:00",
        "item": [
            {
                "linkId": "1",
                "text": "Main reason for today's visit",
                "answer": [{"valueString": "refill"}],
            },
            {"linkId": "2", "text": "Any allergies?", "answer": [{"valueString": "none"}]},
        ],
    }
    return [q, patient(n, gender="male")], {
        "job": "unclassified",
        "rationale": "Local intake form with free text only ('refill'); no recognisable instrument or code, so no basis to classify",
    }


# ---------------------------------------------------------------- score Observations
@case
def obs_phq9_total_with_encounter(n):
    e = wellness_enc(n, "2026-03-18T09:00:00-05:00")
    return [
        total_obs(n, "phq9", PHQ9_TOTAL, 16, when="2026-03-18T09:10:00-05:00", enc=e["id"]),
        patient(n, birth="1994-02-14"),
        e,
    ], {
        "job": "diagnose",
        "instrument": "PHQ-9",
        "score": 16,
        "band": "moderately severe",
        "rationale": "PHQ-9 total (44261-6) as an Observation from an annual exam in a patient with no depression history: screen result 16 = moderately severe",
    }


@case
def obs_phq9_total_no_encounter(n):
    return [
        total_obs(n, "phq9", PHQ9_TOTAL, 8, when="2026-04-01T12:00:00Z", as_quantity=True),
        patient(n, gender="male", birth="1966-06-16"),
    ], {
        "job": "diagnose",
        "instrument": "PHQ-9",
        "score": 8,
        "band": "mild",
        "rationale": "PHQ-9 total as valueQuantity {score}, no encounter, no depression on record: a screen result, 8 = mild",
    }


@case
def obs_phq9_total_known_mdd(n):
    dx = condition(
        n,
        "mdd",
        cc(SCT, "370143000", "Major depressive disorder (disorder)"),
        recorded="2023-05-05T10:00:00-05:00",
        category="problem-list-item",
    )
    return [
        total_obs(n, "phq9", PHQ9_TOTAL, 4, when="2026-05-05T12:00:00Z"),
        patient(n, birth="1972-03-21"),
        dx,
    ], {
        "job": "keep_well",
        "instrument": "PHQ-9",
        "score": 4,
        "band": "minimal",
        "rationale": "PHQ-9 total 4 in a patient with major depressive disorder on the problem list since 2023: monitoring (remission range)",
    }


@case
def obs_phq9_total_with_item9_member(n):
    i9 = {
        "resourceType": "Observation",
        "id": f"{n}-item9",
        "status": "final",
        "category": [cc("http://terminology.hl7.org/CodeSystem/observation-category", "survey")],
        "code": cc(
            LOINC,
            "44260-8",
            "Thoughts that you would be better off dead, or of hurting yourself in some way",
        ),
        "subject": ref("Patient", f"{n}-pat"),
        "effectiveDateTime": "2026-06-20T10:00:00-05:00",
        "valueCodeableConcept": cc(LOINC, "LA6569-3", "Several days"),
    }
    tot = total_obs(
        n,
        "phq9",
        PHQ9_TOTAL,
        6,
        when="2026-06-20T10:00:00-05:00",
        has_member=[ref("Observation", i9["id"])],
    )
    return [tot, patient(n, birth="2000-09-09"), i9], {
        "job": "diagnose",
        "flags": ["self_harm_risk"],
        "instrument": "PHQ-9",
        "score": 6,
        "band": "mild",
        "rationale": "PHQ-9 total 6 whose hasMember item 44260-8 is 'Several days': low total but positive self-harm item",
    }


@case
def obs_phq9_entered_in_error(n):
    return [
        total_obs(
            n, "phq9", PHQ9_TOTAL, 14, when="2026-06-21T10:00:00-05:00", status="entered-in-error"
        ),
        patient(n),
    ], {"job": "excluded", "rationale": "PHQ-9 total Observation with status entered-in-error"}


@case
def obs_gad7_total_with_encounter(n):
    e = encounter(
        n,
        start="2026-07-07T13:00:00-05:00",
        end="2026-07-07T13:30:00-05:00",
        types=T(*PROBLEM),
        reasons=[cc(ICD10, "R45.7", "State of emotional shock and stress, unspecified")],
    )
    return [
        total_obs(n, "gad7", GAD7_TOTAL, 13, when="2026-07-07T13:05:00-05:00", enc=e["id"]),
        patient(n, birth="1991-01-31"),
        e,
    ], {
        "job": "diagnose",
        "instrument": "GAD-7",
        "score": 13,
        "band": "moderate",
        "rationale": "GAD-7 total (70274-6) recorded at a problem visit for new stress symptoms: assessment, 13 = moderate",
    }


@case
def obs_gad7_total_no_encounter(n):
    return [
        total_obs(n, "gad7", GAD7_TOTAL, 15, when="2026-07-08T12:00:00Z", as_quantity=True),
        patient(n, gender="male", birth="1980-08-18"),
    ], {
        "job": "diagnose",
        "instrument": "GAD-7",
        "score": 15,
        "band": "severe",
        "rationale": "Stand-alone GAD-7 total 15 (boundary: severe starts at 15), no known anxiety disorder: screen result",
    }


@case
def obs_gad7_total_known_gad(n):
    dx = condition(
        n,
        "gad",
        cc(ICD10, "F41.1", "Generalized anxiety disorder"),
        recorded="2022-02-02T10:00:00-05:00",
        category="problem-list-item",
    )
    e = encounter(
        n,
        cls="VR",
        start="2026-08-01T09:00:00-04:00",
        end="2026-08-01T09:20:00-04:00",
        reasons=[cc(ICD10, "F41.1", "Generalized anxiety disorder")],
    )
    return [
        total_obs(n, "gad7", GAD7_TOTAL, 9, when="2026-08-01T09:02:00-04:00", enc=e["id"]),
        patient(n, birth="1977-07-27"),
        e,
        dx,
    ], {
        "job": "keep_well",
        "instrument": "GAD-7",
        "score": 9,
        "band": "mild",
        "rationale": "GAD-7 total 9 at a virtual follow-up for GAD known since 2022: monitoring a known condition",
    }


# ---------------------------------------------------------------- encounters
@case
def chemo_visit(n):
    e = encounter(
        n,
        start="2026-03-04T08:00:00-05:00",
        end="2026-03-04T12:30:00-05:00",
        types=T(*OFFICE),
        reasons=[cc(ICD10, "Z51.11", "Encounter for antineoplastic chemotherapy")],
    )
    ca = condition(
        n,
        "ca",
        cc(ICD10, "C50.911", "Malignant neoplasm of unspecified site of right female breast"),
        recorded="2025-12-10T10:00:00-05:00",
        onset="2025-12-01",
        category="problem-list-item",
    )
    p = procedure(
        n,
        "chemo",
        {
            "coding": [
                {
                    "system": CPT,
                    "code": "96413",
                    "display": "Chemotherapy administration, intravenous infusion technique; up to 1 hour, single or initial substance/drug",
                }
            ]
        },
        when="2026-03-04T09:00:00-05:00",
        enc=e["id"],
        reason_refs=[ref("Condition", ca["id"])],
    )
    drug = procedure(
        n,
        "drug",
        cc(HCPCS, "J9355", "Injection, trastuzumab, excludes biosimilar, 10 mg"),
        when="2026-03-04T09:00:00-05:00",
        enc=e["id"],
    )
    return [e, patient(n, birth="1968-10-10"), ca, p, drug], {
        "job": "treat",
        "rationale": "Infusion visit for chemotherapy (Z51.11, CPT 96413 + trastuzumab) of breast cancer diagnosed three months before: oncology treatment",
    }


@case
def dialysis(n):
    e = encounter(
        n,
        start="2026-02-16T06:30:00-05:00",
        end="2026-02-16T10:45:00-05:00",
        types=[cc(SCT, "302497006", "Hemodialysis (procedure)")],
    )
    ckd = condition(
        n,
        "esrd",
        cc(ICD10, "N18.6", "End stage renal disease"),
        recorded="2024-06-01T10:00:00-04:00",
        category="problem-list-item",
    )
    p = procedure(
        n,
        "hd",
        cc(
            CPT,
            "90935",
            "Hemodialysis procedure with single evaluation by a physician or other qualified health care professional",
        ),
        when="2026-02-16T06:45:00-05:00",
        enc=e["id"],
        reason_refs=[ref("Condition", ckd["id"])],
    )
    return [e, patient(n, gender="male", birth="1955-01-01"), ckd, p], {
        "job": "treat",
        "rationale": "Outpatient haemodialysis session for ESRD: renal replacement therapy is ongoing treatment",
    }


@case
def infliximab_infusion(n):
    e = encounter(
        n,
        start="2026-04-08T09:00:00-04:00",
        end="2026-04-08T12:00:00-04:00",
        reasons=[cc(ICD10, "K50.90", "Crohn's disease, unspecified, without complications")],
        service_type=cc(None, "infusion", text="Infusion center"),
    )
    cd = condition(
        n,
        "crohn",
        cc(ICD10, "K50.90", "Crohn's disease, unspecified, without complications"),
        recorded="2021-03-01T10:00:00-05:00",
        category="problem-list-item",
    )
    p1 = procedure(
        n,
        "inf",
        cc(
            CPT,
            "96365",
            "Intravenous infusion, for therapy, prophylaxis, or diagnosis; initial, up to 1 hour",
        ),
        when="2026-04-08T09:30:00-04:00",
        enc=e["id"],
    )
    p2 = procedure(
        n,
        "ifx",
        cc(HCPCS, "J1745", "Injection, infliximab, excludes biosimilar, 10 mg"),
        when="2026-04-08T09:30:00-04:00",
        enc=e["id"],
    )
    return [e, patient(n, birth="1990-04-04"), cd, p1, p2], {
        "job": "treat",
        "rationale": "Scheduled infliximab infusion for known Crohn's disease: active biologic therapy (infusion) is treat, even though the disease is long-standing",
    }


@case
def iron_infusion(n):
    e = encounter(
        n,
        start="2026-05-12T13:00:00-05:00",
        end="2026-05-12T14:00:00-05:00",
        types=T(*OFFICE),
        reasons=[cc(ICD10, "D50.0", "Iron deficiency anemia secondary to blood loss (chronic)")],
    )
    p = procedure(
        n,
        "inf",
        cc(
            CPT,
            "96365",
            "Intravenous infusion, for therapy, prophylaxis, or diagnosis; initial, up to 1 hour",
        ),
        when="2026-05-12T13:10:00-05:00",
        enc=e["id"],
    )
    p2 = procedure(
        n,
        "fcm",
        cc(HCPCS, "J1439", "Injection, ferric carboxymaltose, 1 mg"),
        when="2026-05-12T13:10:00-05:00",
        enc=e["id"],
    )
    return [e, patient(n, birth="1984-02-29"), p, p2], {
        "job": "treat",
        "rationale": "IV iron infusion for iron-deficiency anaemia: therapy delivered",
    }


@case
def t2dm_followup_hba1c(n):
    dm = condition(
        n,
        "dm",
        cc(ICD10, "E11.9", "Type 2 diabetes mellitus without complications"),
        recorded="2024-09-15T10:00:00-04:00",
        onset="2024-09-15",
        category="problem-list-item",
    )
    e = encounter(
        n,
        start="2026-09-16T10:00:00-04:00",
        end="2026-09-16T10:30:00-04:00",
        types=T(*FOLLOWUP),
        reasons=[cc(ICD10, "E11.9", "Type 2 diabetes mellitus without complications")],
        reason_refs=[ref("Condition", dm["id"])],
    )
    a1c = observation(
        n,
        "a1c",
        cc(LOINC, "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood"),
        when="2026-09-16T10:05:00-04:00",
        enc=e["id"],
        value=qty(7.1, "%"),
    )
    rx = medreq(
        n,
        "met",
        cc(RXNORM, "860975", "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet"),
        when="2026-09-16T10:25:00-04:00",
        enc=e["id"],
        reasons=[cc(ICD10, "E11.9", "Type 2 diabetes mellitus without complications")],
    )
    return [e, patient(n, gender="male", birth="1961-11-22"), dm, a1c, rx], {
        "job": "keep_well",
        "rationale": "Diabetes follow-up two years after diagnosis with HbA1c 7.1% and metformin continued: chronic-disease monitoring",
    }


@case
def patient_initiated_z0000(n):
    e = encounter(
        n,
        start="2026-01-27T08:00:00-05:00",
        end="2026-01-27T08:40:00-05:00",
        types=[cc(SCT, "270427003", "Patient-initiated encounter (procedure)")],
        reasons=[
            cc(
                ICD10,
                "Z00.00",
                "Encounter for general adult medical examination without abnormal findings",
            )
        ],
    )
    return [e, patient(n, birth="1982-05-05")], {
        "job": "keep_well",
        "rationale": "Patient asked for a general check-up; coded Z00.00 general adult exam without abnormal findings: prevention",
    }


@case
def screening_mammogram(n):
    e = encounter(
        n,
        start="2026-10-02T07:30:00-04:00",
        end="2026-10-02T08:00:00-04:00",
        reasons=[
            cc(
                ICD10,
                "Z12.31",
                "Encounter for screening mammogram for malignant neoplasm of breast",
            )
        ],
    )
    p = procedure(
        n,
        "mammo",
        cc(SCT, "24623002", "Screening mammography (procedure)"),
        when="2026-10-02T07:35:00-04:00",
        enc=e["id"],
    )
    p["code"]["coding"].append(
        {
            "system": CPT,
            "code": "77067",
            "display": "Screening mammography, bilateral (2-view study of each breast), including computer-aided detection (CAD) when performed",
        }
    )
    birads = observation(
        n,
        "birads",
        cc(LOINC, "36625-2", "Mammogram Breast Views"),
        when="2026-10-02T07:35:00-04:00",
        enc=e["id"],
        category="imaging",
        value={"valueCodeableConcept": cc(LOINC, "LA10617-5", "BI-RADS 1: Negative")},
    )
    return [e, patient(n, birth="1971-03-09"), p, birads], {
        "job": "keep_well",
        "rationale": "Screening mammogram (Z12.31, CPT 77067), BI-RADS 1: population cancer screening of an asymptomatic woman = prevention",
    }


@case
def diagnostic_mammogram(n):
    e = encounter(
        n,
        start="2026-10-12T07:30:00-04:00",
        end="2026-10-12T09:00:00-04:00",
        reasons=[cc(ICD10, "N63.10", "Unspecified lump in the right breast, unspecified quadrant")],
    )
    p = procedure(
        n,
        "mammo",
        cc(
            CPT,
            "77065",
            "Diagnostic mammography, including computer-aided detection (CAD) when performed; unilateral",
        ),
        when="2026-10-12T07:35:00-04:00",
        enc=e["id"],
    )
    us = procedure(
        n,
        "us",
        cc(
            CPT,
            "76641",
            "Ultrasound, breast, unilateral, real time with image documentation, including axilla when performed; complete",
        ),
        when="2026-10-12T08:10:00-04:00",
        enc=e["id"],
    )
    return [e, patient(n, birth="1979-03-09"), p, us], {
        "job": "diagnose",
        "rationale": "Diagnostic mammogram and ultrasound for a new palpable breast lump: working up a symptom",
    }


@case
def breast_biopsy(n):
    e = encounter(
        n,
        start="2026-10-20T10:00:00-04:00",
        end="2026-10-20T11:30:00-04:00",
        reasons=[
            cc(
                ICD10,
                "R92.8",
                "Other abnormal and inconclusive findings on diagnostic imaging of breast",
            )
        ],
    )
    p = procedure(
        n,
        "bx",
        cc(
            CPT,
            "19083",
            "Biopsy, breast, with placement of breast localization device(s), percutaneous; first lesion, including ultrasound guidance",
        ),
        when="2026-10-20T10:20:00-04:00",
        enc=e["id"],
    )
    return [e, patient(n, birth="1979-04-19"), p], {
        "job": "diagnose",
        "rationale": "Ultrasound-guided core biopsy of a suspicious breast lesion: a procedure, but its purpose is tissue diagnosis",
    }


@case
def prenatal_visit(n):
    preg = condition(
        n,
        "preg",
        cc(SCT, "72892002", "Normal pregnancy (finding)"),
        recorded="2026-05-01T10:00:00-04:00",
        category="problem-list-item",
    )
    e = encounter(
        n,
        start="2026-07-15T09:00:00-04:00",
        end="2026-07-15T09:30:00-04:00",
        types=[cc(SCT, "424619006", "Prenatal visit (regime/therapy)")],
        reasons=[
            cc(
                ICD10,
                "Z34.02",
                "Encounter for supervision of normal first pregnancy, second trimester",
            )
        ],
    )
    bp = observation(
        n,
        "bp",
        cc(LOINC, "85354-9", "Blood pressure panel with all children optional"),
        when="2026-07-15T09:05:00-04:00",
        enc=e["id"],
        category="vital-signs",
        components=[
            {"code": cc(LOINC, "8480-6", "Systolic blood pressure"), **qty(112, "mm[Hg]")},
            {"code": cc(LOINC, "8462-4", "Diastolic blood pressure"), **qty(70, "mm[Hg]")},
        ],
    )
    return [e, patient(n, birth="1995-05-25"), preg, bp], {
        "job": "keep_well",
        "rationale": "Routine prenatal visit, normal first pregnancy (Z34.02): supervision of a normal pregnancy is preventive care",
    }


@case
def rehab_pt_encounter_for_problem(n):
    oa = condition(
        n,
        "oa",
        cc(ICD10, "M17.11", "Unilateral primary osteoarthritis, right knee"),
        recorded="2024-02-02T10:00:00-05:00",
    )
    tka = procedure(
        n,
        "tka",
        cc(SCT, "609588000", "Total knee replacement (procedure)"),
        when="2026-08-03T08:00:00-04:00",
        reason_refs=[ref("Condition", oa["id"])],
    )
    e = encounter(
        n,
        start="2026-09-01T14:00:00-04:00",
        end="2026-09-01T14:50:00-04:00",
        types=T(*PROBLEM),
        reasons=[cc(ICD10, "Z47.1", "Aftercare following joint replacement surgery")],
    )
    pt = procedure(
        n,
        "pt",
        {
            "coding": [
                {
                    "system": SCT,
                    "code": "91251008",
                    "display": "Physical therapy procedure (regime/therapy)",
                },
                {
                    "system": CPT,
                    "code": "97110",
                    "display": "Therapeutic procedure, 1 or more areas, each 15 minutes; therapeutic exercises",
                },
            ]
        },
        when="2026-09-01T14:05:00-04:00",
        enc=e["id"],
    )
    return [e, patient(n, birth="1956-06-06"), oa, tka, pt], {
        "job": "treat",
        "rationale": "Generic 'encounter for problem' but the linked evidence is a physical-therapy session four weeks after knee replacement: rehabilitation is treatment",
    }


@case
def planned_encounter(n):
    e = encounter(
        n,
        status="planned",
        start="2027-03-15T09:00:00-04:00",
        reasons=[cc(ICD10, "E11.9", "Type 2 diabetes mellitus without complications")],
        types=T(*FOLLOWUP),
    )
    return [e, patient(n)], {
        "job": "upcoming",
        "flags": ["upcoming"],
        "rationale": "Planned follow-up booked for March 2027: has not happened, so it is upcoming, not care received",
    }


@case
def planned_surgery(n):
    e = encounter(
        n,
        cls="IMP",
        status="planned",
        start="2027-01-20T07:00:00-05:00",
        reasons=[cc(ICD10, "M17.12", "Unilateral primary osteoarthritis, left knee")],
    )
    return [e, patient(n, birth="1950-01-01")], {
        "job": "upcoming",
        "flags": ["upcoming"],
        "rationale": "Planned admission for knee surgery (status planned, future date): upcoming even though the eventual job will be treat",
    }


@case
def cancelled_encounter(n):
    e = encounter(
        n,
        status="cancelled",
        start="2026-05-05T09:00:00-04:00",
        types=T(*CHECKUP),
        reasons=[
            cc(
                ICD10,
                "Z00.00",
                "Encounter for general adult medical examination without abnormal findings",
            )
        ],
    )
    return [e, patient(n)], {
        "job": "excluded",
        "rationale": "Cancelled check-up: no care took place",
    }


@case
def entered_in_error_encounter(n):
    e = encounter(
        n,
        cls="EMER",
        status="entered-in-error",
        start="2026-05-06T22:00:00-04:00",
        end="2026-05-06T23:30:00-04:00",
        reasons=[cc(ICD10, "R07.9", "Chest pain, unspecified")],
    )
    return [e, patient(n, gender="male")], {
        "job": "excluded",
        "rationale": "Encounter entered in error (wrong patient chart): must not appear",
    }


@case
def substance_use_rehab(n):
    aud = condition(
        n,
        "aud",
        cc(ICD10, "F10.20", "Alcohol dependence, uncomplicated"),
        recorded="2026-01-10T10:00:00-05:00",
    )
    e = encounter(
        n,
        start="2026-02-10T09:00:00-05:00",
        end="2026-02-10T12:00:00-05:00",
        reasons=[cc(ICD10, "F10.20", "Alcohol dependence, uncomplicated")],
        reason_refs=[ref("Condition", aud["id"])],
        service_type=cc(None, "IOP", text="Substance use intensive outpatient program"),
    )
    p = procedure(
        n,
        "iop",
        cc(
            HCPCS,
            "H0015",
            "Alcohol and/or drug services; intensive outpatient (treatment program that operates at least 3 hours/day and at least 3 days/week)",
        ),
        when="2026-02-10T09:00:00-05:00",
        enc=e["id"],
    )
    return [e, patient(n, gender="male", birth="1978-12-24"), aud, p], {
        "job": "treat",
        "rationale": "Intensive outpatient programme session for alcohol dependence (H0015): substance-use rehabilitation is treatment",
    }


@case
def immunization_only(n):
    e = encounter(
        n,
        start="2026-10-15T16:00:00-04:00",
        end="2026-10-15T16:10:00-04:00",
        reasons=[cc(ICD10, "Z23", "Encounter for immunization")],
    )
    imm = {
        "resourceType": "Immunization",
        "id": f"{n}-imm",
        "status": "completed",
        "vaccineCode": cc(CVX, "150", "Influenza, injectable, quadrivalent, preservative free"),
        "patient": ref("Patient", f"{n}-pat"),
        "encounter": ref("Encounter", e["id"]),
        "occurrenceDateTime": "2026-10-15T16:05:00-04:00",
        "primarySource": True,
    }
    return [e, patient(n, birth="1948-08-08"), imm], {
        "job": "keep_well",
        "rationale": "Flu shot only visit (Z23): prevention",
    }


@case
def ed_chest_pain_workup(n):
    e = encounter(
        n,
        cls="EMER",
        start="2026-11-03T21:10:00-05:00",
        end="2026-11-04T02:40:00-05:00",
        types=[cc(SCT, "50849002", "Emergency room admission (procedure)")],
        reasons=[cc(ICD10, "R07.9", "Chest pain, unspecified")],
    )
    trop1 = observation(
        n,
        "trop1",
        cc(
            LOINC,
            "89579-7",
            "Troponin I.cardiac [Mass/volume] in Serum or Plasma by High sensitivity method",
        ),
        when="2026-11-03T21:30:00-05:00",
        enc=e["id"],
        value=qty(3, "ng/L"),
    )
    trop2 = observation(
        n,
        "trop2",
        cc(
            LOINC,
            "89579-7",
            "Troponin I.cardiac [Mass/volume] in Serum or Plasma by High sensitivity method",
        ),
        when="2026-11-04T00:30:00-05:00",
        enc=e["id"],
        value=qty(4, "ng/L"),
    )
    ecg = procedure(
        n,
        "ecg",
        {
            "coding": [
                {
                    "system": SCT,
                    "code": "29303009",
                    "display": "Electrocardiographic procedure (procedure)",
                },
                {
                    "system": CPT,
                    "code": "93010",
                    "display": "Electrocardiogram, routine ECG with at least 12 leads; interpretation and report only",
                },
            ]
        },
        when="2026-11-03T21:15:00-05:00",
        enc=e["id"],
    )
    mi = condition(
        n,
        "mi",
        cc(ICD10, "I21.4", "Non-ST elevation (NSTEMI) myocardial infarction"),
        recorded="2026-11-03T21:20:00-05:00",
        enc=e["id"],
        verification="refuted",
        clinical="resolved",
    )
    final = condition(
        n,
        "cp",
        cc(ICD10, "R07.89", "Other chest pain"),
        recorded="2026-11-04T02:30:00-05:00",
        enc=e["id"],
    )
    dr = report(
        n,
        "dr",
        cc(None, "TROP-SERIAL", text="High-sensitivity troponin I, serial"),
        when="2026-11-04T00:45:00-05:00",
        enc=e["id"],
        results=[trop1["id"], trop2["id"]],
        conclusion="Serial hs-troponin negative; ACS ruled out",
    )
    return [
        e,
        patient(n, gender="male", birth="1969-07-04"),
        trop1,
        trop2,
        ecg,
        mi,
        final,
        dr,
    ], {
        "job": "diagnose",
        "rationale": "ED chest-pain workup (ECG, serial hs-troponin), suspected NSTEMI refuted, discharged with non-specific chest pain: the job was finding out what was wrong",
    }


@case
def appendectomy_admission(n):
    e = encounter(
        n,
        cls="IMP",
        start="2026-06-02T03:00:00-04:00",
        end="2026-06-03T11:00:00-04:00",
        types=[cc(SCT, "183452005", "Emergency hospital admission (procedure)")],
        hospitalization={
            "admitSource": cc(
                "http://terminology.hl7.org/CodeSystem/admit-source",
                "emd",
                "From accident/emergency department",
            )
        },
    )
    appy = condition(
        n,
        "appy",
        cc(ICD10, "K35.80", "Unspecified acute appendicitis"),
        recorded="2026-06-02T02:30:00-04:00",
        enc=e["id"],
    )
    e["diagnosis"] = [
        {
            "condition": ref("Condition", appy["id"]),
            "use": cc(
                "http://terminology.hl7.org/CodeSystem/diagnosis-role", "DD", "Discharge diagnosis"
            ),
            "rank": 1,
        }
    ]
    p = procedure(
        n,
        "lap",
        {
            "coding": [
                {
                    "system": SCT,
                    "code": "6025007",
                    "display": "Laparoscopic appendectomy (procedure)",
                },
                {"system": CPT, "code": "44970", "display": "Laparoscopy, surgical, appendectomy"},
            ]
        },
        when="2026-06-02T07:00:00-04:00",
        enc=e["id"],
        reason_refs=[ref("Condition", appy["id"])],
    )
    return [e, patient(n, birth="2003-03-03"), appy, p], {
        "job": "treat",
        "rationale": "Emergency admission for acute appendicitis with laparoscopic appendectomy: surgery is treatment (the diagnosis was established on arrival)",
    }


@case
def knee_replacement(n):
    oa = condition(
        n,
        "oa",
        cc(ICD10, "M17.11", "Unilateral primary osteoarthritis, right knee"),
        recorded="2023-04-04T10:00:00-04:00",
        category="problem-list-item",
    )
    e = encounter(
        n,
        cls="IMP",
        start="2026-08-03T06:00:00-04:00",
        end="2026-08-05T12:00:00-04:00",
        types=[cc(SCT, "32485007", "Hospital admission (procedure)")],
        reason_refs=[ref("Condition", oa["id"])],
    )
    p = procedure(
        n,
        "tka",
        {
            "coding": [
                {
                    "system": SCT,
                    "code": "609588000",
                    "display": "Total knee replacement (procedure)",
                },
                {
                    "system": CPT,
                    "code": "27447",
                    "display": "Arthroplasty, knee, condyle and plateau; medial AND lateral compartments with or without patella resurfacing (total knee arthroplasty)",
                },
            ]
        },
        when="2026-08-03T08:00:00-04:00",
        enc=e["id"],
    )
    return [e, patient(n, birth="1952-12-12"), oa, p], {
        "job": "treat",
        "rationale": "Elective admission for total knee arthroplasty for long-standing osteoarthritis: surgery",
    }


@case
def diabetic_eye_exam(n):
    dm = condition(
        n,
        "dm",
        cc(ICD10, "E11.9", "Type 2 diabetes mellitus without complications"),
        recorded="2019-01-09T10:00:00-05:00",
        category="problem-list-item",
    )
    e = encounter(
        n,
        start="2026-04-21T14:00:00-04:00",
        end="2026-04-21T14:45:00-04:00",
        reasons=[cc(ICD10, "E11.9", "Type 2 diabetes mellitus without complications")],
        service_type=cc(None, "ophth", text="Ophthalmology"),
    )
    p = procedure(
        n,
        "eye",
        {
            "coding": [
                {
                    "system": CPT,
                    "code": "92014",
                    "display": "Ophthalmological services: medical examination and evaluation, with initiation or continuation of diagnostic and treatment program; comprehensive, established patient, 1 or more visits",
                },
                {
                    "system": SCT,
                    "code": "134395001",
                    "display": "Diabetic retinopathy screening (procedure)",
                },
            ]
        },
        when="2026-04-21T14:10:00-04:00",
        enc=e["id"],
    )
    ii = procedure(
        n,
        "2023f",
        cc(
            CPT,
            "2023F",
            "Dilated retinal eye exam with interpretation by an ophthalmologist or optometrist documented and reviewed; without evidence of retinopathy",
        ),
        when="2026-04-21T14:40:00-04:00",
        enc=e["id"],
    )
    return [e, patient(n, gender="male", birth="1959-09-19"), dm, p, ii], {
        "job": "keep_well",
        "rationale": "Annual dilated eye exam for known type 2 diabetes, no retinopathy: complication surveillance of a chronic disease",
    }


@case
def amb_class_only_no_evidence(n):
    e = encounter(n, start="2026-03-30T10:00:00-04:00", end="2026-03-30T10:20:00-04:00")
    return [e, patient(n)], {
        "job": "unclassified",
        "rationale": "Finished ambulatory encounter with only class AMB: no type, reason or linked evidence, so no clinical basis to say",
    }


@case
def amb_class_only_with_new_dx(n):
    e = encounter(n, start="2026-03-31T10:00:00-04:00", end="2026-03-31T10:20:00-04:00")
    rst = observation(
        n,
        "strep",
        cc(LOINC, "78012-2", "Streptococcus pyogenes Ag [Presence] in Throat by Rapid immunoassay"),
        when="2026-03-31T10:05:00-04:00",
        enc=e["id"],
        value={"valueCodeableConcept": cc(SCT, "10828004", "Positive (qualifier value)")},
    )
    dx = condition(
        n,
        "dx",
        cc(ICD10, "J02.0", "Streptococcal pharyngitis"),
        recorded="2026-03-31T10:15:00-04:00",
        onset="2026-03-29",
        enc=e["id"],
    )
    rx = medreq(
        n,
        "amox",
        cc(RXNORM, "308191", "amoxicillin 500 MG Oral Capsule"),
        when="2026-03-31T10:18:00-04:00",
        enc=e["id"],
    )
    return [e, patient(n, birth="2010-10-10"), rst, dx, rx], {
        "job": "diagnose",
        "rationale": "Only class AMB on the encounter, but linked evidence shows a new sore throat tested (rapid strep positive) and diagnosed as strep pharyngitis; the antibiotic is the ordinary close of a diagnostic visit",
    }


@case
def checkup_type_only(n):
    e = encounter(
        n, start="2026-02-12T09:00:00-05:00", end="2026-02-12T09:30:00-05:00", types=T(*CHECKUP)
    )
    return [e, patient(n, birth="1990-01-01")], {
        "job": "keep_well",
        "rationale": "Only coding is 'Encounter for check up': a check-up is preventive by definition even without other evidence",
    }


@case
def checkup_type_but_laceration_repair(n):
    e = encounter(
        n, start="2026-02-13T09:00:00-05:00", end="2026-02-13T09:45:00-05:00", types=T(*CHECKUP)
    )
    inj = condition(
        n,
        "lac",
        cc(ICD10, "S61.411A", "Laceration without foreign body of right hand, initial encounter"),
        recorded="2026-02-13T09:10:00-05:00",
        enc=e["id"],
    )
    rep = procedure(
        n,
        "rep",
        {
            "coding": [
                {
                    "system": CPT,
                    "code": "12002",
                    "display": "Simple repair of superficial wounds of scalp, neck, axillae, external genitalia, trunk and/or extremities (including hands and feet); 2.6 cm to 7.5 cm",
                }
            ]
        },
        when="2026-02-13T09:20:00-05:00",
        enc=e["id"],
        reason_refs=[ref("Condition", inj["id"])],
    )
    return [e, patient(n, gender="male", birth="1985-05-15"), inj, rep], {
        "job": "treat",
        "rationale": "Typed 'check up' (default scheduling type) but the coded evidence is a fresh hand laceration sutured at the visit: the specific procedure outranks the generic type",
    }


@case
def checkup_with_incidental_new_diabetes(n):
    e = encounter(
        n,
        start="2026-02-14T09:00:00-05:00",
        end="2026-02-14T09:40:00-05:00",
        types=T(*CHECKUP),
        reasons=[
            cc(
                ICD10,
                "Z00.01",
                "Encounter for general adult medical examination with abnormal findings",
            )
        ],
    )
    a1c = observation(
        n,
        "a1c",
        cc(LOINC, "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood"),
        when="2026-02-14T09:05:00-05:00",
        enc=e["id"],
        value=qty(7.4, "%"),
        interpretation="H",
    )
    dm = condition(
        n,
        "dm",
        cc(ICD10, "E11.9", "Type 2 diabetes mellitus without complications"),
        recorded="2026-02-14T09:35:00-05:00",
        enc=e["id"],
    )
    return [e, patient(n, gender="male", birth="1972-02-14"), a1c, dm], {
        "job": "keep_well",
        "ambiguous": True,
        "rationale": "Annual exam (Z00.01 'with abnormal findings') where screening HbA1c found new diabetes. The patient came for prevention (keep_well); the new diagnosis is a finding of the screen. Some would call it diagnose",
    }


@case
def problem_type_only(n):
    e = encounter(
        n, start="2026-02-15T09:00:00-05:00", end="2026-02-15T09:20:00-05:00", types=T(*PROBLEM)
    )
    return [e, patient(n, birth="1965-06-15")], {
        "job": "unclassified",
        "rationale": "Only coding is 'Encounter for problem': a problem exists but nothing says whether it is new, treated or followed up",
    }


@case
def problem_type_new_otitis(n):
    e = encounter(
        n, start="2026-02-16T09:00:00-05:00", end="2026-02-16T09:20:00-05:00", types=T(*PROBLEM)
    )
    dx = condition(
        n,
        "aom",
        cc(ICD10, "H66.91", "Otitis media, unspecified, right ear"),
        recorded="2026-02-16T09:15:00-05:00",
        onset="2026-02-14",
        enc=e["id"],
    )
    return [e, patient(n, birth="2019-07-07"), dx], {
        "job": "diagnose",
        "rationale": "'Encounter for problem' with a new right otitis media (onset two days before) diagnosed at the visit: finding out what is wrong",
    }


@case
def problem_type_known_htn(n):
    htn = condition(
        n,
        "htn",
        cc(ICD10, "I10", "Essential (primary) hypertension"),
        recorded="2022-03-03T10:00:00-05:00",
        category="problem-list-item",
    )
    e = encounter(
        n,
        start="2026-02-17T09:00:00-05:00",
        end="2026-02-17T09:20:00-05:00",
        types=T(*PROBLEM),
        reason_refs=[ref("Condition", htn["id"])],
    )
    bp = observation(
        n,
        "bp",
        cc(LOINC, "85354-9", "Blood pressure panel with all children optional"),
        when="2026-02-17T09:05:00-05:00",
        enc=e["id"],
        category="vital-signs",
        components=[
            {"code": cc(LOINC, "8480-6", "Systolic blood pressure"), **qty(134, "mm[Hg]")},
            {"code": cc(LOINC, "8462-4", "Diastolic blood pressure"), **qty(82, "mm[Hg]")},
        ],
    )
    rx = medreq(
        n,
        "lis",
        cc(RXNORM, "314076", "lisinopril 10 MG Oral Tablet"),
        when="2026-02-17T09:18:00-05:00",
        enc=e["id"],
    )
    return [e, patient(n, gender="male", birth="1958-08-28"), htn, bp, rx], {
        "job": "keep_well",
        "rationale": "'Encounter for problem' whose reason is hypertension known since 2022, BP checked, lisinopril renewed: chronic-disease maintenance",
    }


@case
def inpatient_pneumonia(n):
    e = encounter(
        n,
        cls="IMP",
        start="2026-01-05T18:00:00-05:00",
        end="2026-01-09T11:00:00-05:00",
        types=[cc(SCT, "183452005", "Emergency hospital admission (procedure)")],
        reasons=[cc(ICD10, "J18.9", "Pneumonia, unspecified organism")],
    )
    dx = condition(
        n,
        "pna",
        cc(ICD10, "J18.9", "Pneumonia, unspecified organism"),
        recorded="2026-01-05T17:00:00-05:00",
        enc=e["id"],
    )
    rx = medreq(
        n,
        "ctx",
        cc(RXNORM, "1665021", "ceftriaxone 1000 MG Injection"),
        when="2026-01-05T18:30:00-05:00",
        enc=e["id"],
    )
    return [e, patient(n, birth="1940-10-10"), dx, rx], {
        "job": "treat",
        "rationale": "Four-day admission for pneumonia with IV antibiotics: inpatient treatment of a diagnosed illness",
    }


@case
def psychotherapy_known_mdd(n):
    dx = condition(
        n,
        "mdd",
        cc(ICD10, "F33.1", "Major depressive disorder, recurrent, moderate"),
        recorded="2025-06-01T10:00:00-04:00",
        category="problem-list-item",
    )
    e = encounter(
        n,
        start="2026-03-09T16:00:00-05:00",
        end="2026-03-09T16:45:00-05:00",
        reason_refs=[ref("Condition", dx["id"])],
    )
    p = procedure(
        n,
        "tx",
        cc(CPT, "90834", "Psychotherapy, 45 minutes with patient"),
        when="2026-03-09T16:00:00-05:00",
        enc=e["id"],
    )
    return [e, patient(n, birth="1993-03-13"), dx, p], {
        "job": "treat",
        "rationale": "Psychotherapy session (90834) for known recurrent depression: active therapy of a known condition is treat",
    }


@case
def mri_knee_pain(n):
    e = encounter(
        n,
        start="2026-04-15T12:00:00-04:00",
        end="2026-04-15T12:45:00-04:00",
        reasons=[cc(ICD10, "M25.561", "Pain in right knee")],
    )
    p = procedure(
        n,
        "mri",
        cc(
            CPT,
            "73721",
            "Magnetic resonance (eg, proton) imaging, any joint of lower extremity; without contrast material",
        ),
        when="2026-04-15T12:05:00-04:00",
        enc=e["id"],
    )
    return [e, patient(n, gender="male", birth="1989-09-09"), p], {
        "job": "diagnose",
        "rationale": "Outpatient MRI for knee pain: imaging to find the cause",
    }


@case
def colonoscopy_diagnostic(n):
    e = encounter(
        n,
        start="2026-05-19T07:00:00-04:00",
        end="2026-05-19T09:00:00-04:00",
        reasons=[cc(ICD10, "K62.5", "Hemorrhage of anus and rectum")],
    )
    p = procedure(
        n,
        "colo",
        {
            "coding": [
                {"system": SCT, "code": "73761001", "display": "Colonoscopy (procedure)"},
                {
                    "system": CPT,
                    "code": "45378",
                    "display": "Colonoscopy, flexible; diagnostic, including collection of specimen(s) by brushing or washing, when performed (separate procedure)",
                },
            ]
        },
        when="2026-05-19T07:30:00-04:00",
        enc=e["id"],
    )
    return [e, patient(n, birth="1964-04-14"), p], {
        "job": "diagnose",
        "rationale": "Colonoscopy for rectal bleeding: investigating a symptom",
    }


@case
def colonoscopy_screening(n):
    e = encounter(
        n,
        start="2026-05-20T07:00:00-04:00",
        end="2026-05-20T09:00:00-04:00",
        reasons=[cc(ICD10, "Z12.11", "Encounter for screening for malignant neoplasm of colon")],
    )
    p = procedure(
        n,
        "colo",
        {
            "coding": [
                {"system": SCT, "code": "73761001", "display": "Colonoscopy (procedure)"},
                {
                    "system": HCPCS,
                    "code": "G0121",
                    "display": "Colorectal cancer screening; colonoscopy on individual not meeting criteria for high risk",
                },
            ]
        },
        when="2026-05-20T07:30:00-04:00",
        enc=e["id"],
    )
    return [e, patient(n, gender="male", birth="1976-05-20"), p], {
        "job": "keep_well",
        "rationale": "Average-risk screening colonoscopy (Z12.11, G0121): cancer screening = prevention, although the act is an endoscopy",
    }


@case
def iud_insertion(n):
    e = encounter(
        n,
        start="2026-06-23T10:00:00-04:00",
        end="2026-06-23T10:40:00-04:00",
        reasons=[
            cc(ICD10, "Z30.430", "Encounter for insertion of intrauterine contraceptive device")
        ],
    )
    p = procedure(
        n,
        "iud",
        cc(CPT, "58300", "Insertion of intrauterine device (IUD)"),
        when="2026-06-23T10:15:00-04:00",
        enc=e["id"],
    )
    return [e, patient(n, birth="1997-07-17"), p], {
        "job": "keep_well",
        "rationale": "IUD insertion for contraception (Z30.430): a procedure, but contraception is preventive care",
    }


@case
def postpartum_followup(n):
    e = encounter(
        n,
        start="2026-08-25T11:00:00-04:00",
        end="2026-08-25T11:30:00-04:00",
        reasons=[cc(ICD10, "Z39.2", "Encounter for routine postpartum follow-up")],
    )
    return [e, patient(n, birth="1994-04-24")], {
        "job": "keep_well",
        "rationale": "Routine postpartum check (Z39.2)",
    }


@case
def allergy_immunotherapy(n):
    ar = condition(
        n,
        "ar",
        cc(ICD10, "J30.1", "Allergic rhinitis due to pollen"),
        recorded="2024-04-01T10:00:00-04:00",
        category="problem-list-item",
    )
    e = encounter(
        n,
        start="2026-04-06T08:00:00-04:00",
        end="2026-04-06T08:40:00-04:00",
        reason_refs=[ref("Condition", ar["id"])],
    )
    p = procedure(
        n,
        "ait",
        cc(
            CPT,
            "95117",
            "Professional services for allergen immunotherapy not including provision of allergenic extracts; 2 or more injections",
        ),
        when="2026-04-06T08:05:00-04:00",
        enc=e["id"],
    )
    return [e, patient(n, birth="2002-02-02"), ar, p], {
        "job": "treat",
        "rationale": "Allergen immunotherapy injections for known pollen allergy: a course of disease-modifying therapy",
    }


@case
def cardiac_rehab(n):
    cad = condition(
        n,
        "cad",
        cc(
            ICD10,
            "I25.10",
            "Atherosclerotic heart disease of native coronary artery without angina pectoris",
        ),
        recorded="2026-07-01T10:00:00-04:00",
        category="problem-list-item",
    )
    e = encounter(
        n,
        start="2026-08-12T07:00:00-04:00",
        end="2026-08-12T08:00:00-04:00",
        reason_refs=[ref("Condition", cad["id"])],
    )
    p = procedure(
        n,
        "cr",
        cc(
            CPT,
            "93798",
            "Physician or other qualified health care professional services for outpatient cardiac rehabilitation; with continuous ECG monitoring (per session)",
        ),
        when="2026-08-12T07:00:00-04:00",
        enc=e["id"],
    )
    return [e, patient(n, gender="male", birth="1957-07-07"), cad, p], {
        "job": "treat",
        "rationale": "Cardiac rehabilitation session: rehabilitation is treatment",
    }


@case
def anticoag_inr(n):
    af = condition(
        n,
        "af",
        cc(ICD10, "I48.91", "Unspecified atrial fibrillation"),
        recorded="2021-09-09T10:00:00-04:00",
        category="problem-list-item",
    )
    e = encounter(
        n,
        start="2026-09-22T09:00:00-04:00",
        end="2026-09-22T09:10:00-04:00",
        reasons=[
            cc(ICD10, "Z79.01", "Long term (current) use of anticoagulants"),
            cc(ICD10, "I48.91", "Unspecified atrial fibrillation"),
        ],
    )
    inr = observation(
        n,
        "inr",
        cc(LOINC, "6301-6", "INR in Platelet poor plasma by Coagulation assay"),
        when="2026-09-22T09:02:00-04:00",
        enc=e["id"],
        value={
            "valueQuantity": {
                "value": 2.4,
                "unit": "{INR}",
                "system": "http://unitsofmeasure.org",
                "code": "{INR}",
            }
        },
    )
    return [e, patient(n, birth="1945-05-15"), af, inr], {
        "job": "keep_well",
        "rationale": "Anticoagulation clinic INR check for long-standing AF on warfarin: monitoring of maintenance therapy",
    }


@case
def sleep_study(n):
    e = encounter(
        n,
        start="2026-03-20T21:00:00-04:00",
        end="2026-03-21T06:00:00-04:00",
        reasons=[cc(ICD10, "R06.83", "Snoring"), cc(ICD10, "G47.10", "Hypersomnia, unspecified")],
    )
    p = procedure(
        n,
        "psg",
        cc(
            CPT,
            "95810",
            "Polysomnography; age 6 years or older, sleep staging with 4 or more additional parameters of sleep, attended by a technologist",
        ),
        when="2026-03-20T22:00:00-04:00",
        enc=e["id"],
    )
    return [e, patient(n, gender="male", birth="1970-10-20"), p], {
        "job": "diagnose",
        "rationale": "Overnight polysomnography for snoring and sleepiness: testing for sleep apnoea",
    }


@case
def ed_wrist_fracture_reduction(n):
    e = encounter(
        n,
        cls="EMER",
        start="2026-01-18T14:00:00-05:00",
        end="2026-01-18T18:00:00-05:00",
        reasons=[
            cc(
                ICD10,
                "S52.501A",
                "Unspecified fracture of the lower end of right radius, initial encounter for closed fracture",
            )
        ],
    )
    xr = procedure(
        n,
        "xr",
        cc(CPT, "73110", "Radiologic examination, wrist; complete, minimum of 3 views"),
        when="2026-01-18T14:30:00-05:00",
        enc=e["id"],
    )
    red = procedure(
        n,
        "red",
        cc(CPT, "25605", "Closed treatment of distal radial fracture; with manipulation"),
        when="2026-01-18T16:00:00-05:00",
        enc=e["id"],
    )
    return [e, patient(n, birth="1950-12-01"), xr, red], {
        "job": "treat",
        "rationale": "ED visit after a fall: X-ray confirmed a distal radius fracture that was reduced and splinted; the X-ray is incidental to the main job, fixing an obvious injury",
    }


@case
def eie_condition_trap(n):
    e = encounter(n, start="2026-02-24T11:00:00-05:00", end="2026-02-24T11:20:00-05:00")
    bad = condition(
        n,
        "wrong",
        cc(
            ICD10,
            "C34.90",
            "Malignant neoplasm of unspecified part of unspecified bronchus or lung",
        ),
        recorded="2026-02-24T11:10:00-05:00",
        enc=e["id"],
        verification="entered-in-error",
        clinical="inactive",
    )
    bad.pop("clinicalStatus")
    good = condition(
        n,
        "bronch",
        cc(ICD10, "J20.9", "Acute bronchitis, unspecified"),
        recorded="2026-02-24T11:15:00-05:00",
        onset="2026-02-17",
        enc=e["id"],
    )
    return [e, patient(n, gender="male", birth="1967-06-07"), bad, good], {
        "job": "diagnose",
        "rationale": "New cough diagnosed as acute bronchitis; the lung-cancer Condition on the same encounter is entered-in-error and must be ignored (not oncology treatment)",
    }


@case
def weight_counseling(n):
    ob = condition(
        n,
        "ob",
        cc(ICD10, "E66.9", "Obesity, unspecified"),
        recorded="2024-01-01T10:00:00-05:00",
        category="problem-list-item",
    )
    e = encounter(
        n,
        start="2026-05-27T10:00:00-04:00",
        end="2026-05-27T10:30:00-04:00",
        reasons=[
            cc(ICD10, "Z71.3", "Dietary counseling and surveillance"),
            cc(ICD10, "E66.9", "Obesity, unspecified"),
        ],
    )
    return [e, patient(n, birth="1986-06-26"), ob], {
        "job": "keep_well",
        "rationale": "Dietary counselling for known obesity: lifestyle/preventive management of a chronic risk factor",
    }


@case
def palliative_visit(n):
    ca = condition(
        n,
        "ca",
        cc(ICD10, "C25.9", "Malignant neoplasm of pancreas, unspecified"),
        recorded="2026-02-02T10:00:00-05:00",
        category="problem-list-item",
    )
    e = encounter(
        n,
        cls="HH",
        start="2026-09-30T13:00:00-04:00",
        end="2026-09-30T14:00:00-04:00",
        reasons=[cc(ICD10, "Z51.5", "Encounter for palliative care")],
        reason_refs=[ref("Condition", ca["id"])],
    )
    return [e, patient(n, gender="male", birth="1948-04-04"), ca], {
        "job": "keep_well",
        "ambiguous": True,
        "rationale": "Home palliative-care visit (Z51.5) for advanced pancreatic cancer: comfort and symptom care of a known disease, judged keep_well; some would call symptom control treat",
    }


@case
def telehealth_hypothyroid(n):
    hypo = condition(
        n,
        "hypo",
        cc(ICD10, "E03.9", "Hypothyroidism, unspecified"),
        recorded="2018-08-08T10:00:00-04:00",
        category="problem-list-item",
    )
    e = encounter(
        n,
        cls="VR",
        start="2026-10-06T11:00:00-04:00",
        end="2026-10-06T11:15:00-04:00",
        reasons=[cc(ICD10, "E03.9", "Hypothyroidism, unspecified")],
    )
    tsh = observation(
        n,
        "tsh",
        cc(LOINC, "3016-3", "Thyrotropin [Units/volume] in Serum or Plasma"),
        when="2026-10-01T08:00:00-04:00",
        enc=e["id"],
        value=qty(2.1, "m[IU]/L"),
    )
    return [e, patient(n, birth="1962-12-26"), hypo, tsh], {
        "job": "keep_well",
        "rationale": "Video visit to review TSH for hypothyroidism known since 2018: routine monitoring of replacement therapy",
    }


@case
def post_mi_followup(n):
    mi = condition(
        n,
        "mi",
        cc(ICD10, "I21.4", "Non-ST elevation (NSTEMI) myocardial infarction"),
        recorded="2026-09-01T10:00:00-04:00",
    )
    e = encounter(
        n,
        start="2026-09-15T10:00:00-04:00",
        end="2026-09-15T10:30:00-04:00",
        types=T(*FOLLOWUP),
        reason_refs=[ref("Condition", mi["id"])],
    )
    return [e, patient(n, gender="male", birth="1960-06-16"), mi], {
        "job": "keep_well",
        "rationale": "Two-week post-discharge follow-up after NSTEMI: the condition is known and was treated in hospital; this visit reviews recovery and secondary prevention",
    }


@case
def postop_wound_check(n):
    e = encounter(
        n,
        start="2026-06-16T10:00:00-04:00",
        end="2026-06-16T10:15:00-04:00",
        types=[cc(SCT, "439740005", "Postoperative follow-up visit (procedure)")],
        reasons=[
            cc(
                ICD10,
                "Z48.815",
                "Encounter for surgical aftercare following surgery on the digestive system",
            )
        ],
    )
    return [e, patient(n, birth="2003-03-13")], {
        "job": "keep_well",
        "rationale": "Routine post-operative check after appendectomy (Z48.815): follow-up of completed treatment",
    }


@case
def urgent_care_uti(n):
    e = encounter(
        n,
        start="2026-07-19T18:00:00-04:00",
        end="2026-07-19T18:30:00-04:00",
        reasons=[cc(ICD10, "R30.0", "Dysuria")],
    )
    ua = observation(
        n,
        "ua",
        cc(LOINC, "5799-2", "Leukocyte esterase [Presence] in Urine by Test strip"),
        when="2026-07-19T18:10:00-04:00",
        enc=e["id"],
        value={"valueCodeableConcept": cc(SCT, "10828004", "Positive (qualifier value)")},
    )
    dx = condition(
        n,
        "uti",
        cc(ICD10, "N39.0", "Urinary tract infection, site not specified"),
        recorded="2026-07-19T18:25:00-04:00",
        enc=e["id"],
    )
    rx = medreq(
        n,
        "nitro",
        cc(RXNORM, "1648755", "nitrofurantoin 100 MG Extended Release Oral Capsule"),
        when="2026-07-19T18:28:00-04:00",
        enc=e["id"],
    )
    return [e, patient(n, birth="1991-09-19"), ua, dx, rx], {
        "job": "diagnose",
        "rationale": "Urgent-care visit for dysuria: dipstick, new UTI diagnosis, short antibiotic course; the visit's job is finding out what is wrong",
    }


@case
def ed_asthma_exacerbation(n):
    asthma = condition(
        n,
        "asthma",
        cc(ICD10, "J45.40", "Moderate persistent asthma, uncomplicated"),
        recorded="2015-05-05T10:00:00-04:00",
        category="problem-list-item",
    )
    e = encounter(
        n,
        cls="EMER",
        start="2026-10-09T02:00:00-04:00",
        end="2026-10-09T06:00:00-04:00",
        reasons=[cc(ICD10, "J45.41", "Moderate persistent asthma with (acute) exacerbation")],
    )
    neb = procedure(
        n,
        "neb",
        cc(
            CPT,
            "94640",
            "Pressurized or nonpressurized inhalation treatment for acute airway obstruction for therapeutic purposes",
        ),
        when="2026-10-09T02:20:00-04:00",
        enc=e["id"],
    )
    rx = medreq(
        n,
        "pred",
        cc(RXNORM, "312617", "predniSONE 20 MG Oral Tablet"),
        when="2026-10-09T05:30:00-04:00",
        enc=e["id"],
    )
    return [e, patient(n, birth="2000-10-10"), asthma, neb, rx], {
        "job": "treat",
        "rationale": "ED visit for an exacerbation of known asthma with repeated nebulisers and steroids: treating a flare, no diagnostic question",
    }


@case
def home_wound_care_dfu(n):
    dfu = condition(
        n,
        "dfu",
        cc(ICD10, "E11.621", "Type 2 diabetes mellitus with foot ulcer"),
        recorded="2026-06-01T10:00:00-04:00",
    )
    ulcer = condition(
        n,
        "ulc",
        cc(
            ICD10,
            "L97.412",
            "Non-pressure chronic ulcer of right heel and midfoot with fat layer exposed",
        ),
        recorded="2026-06-01T10:00:00-04:00",
    )
    e = encounter(
        n,
        cls="HH",
        start="2026-07-01T10:00:00-04:00",
        end="2026-07-01T10:45:00-04:00",
        reason_refs=[ref("Condition", dfu["id"]), ref("Condition", ulcer["id"])],
    )
    p = procedure(
        n,
        "deb",
        cc(
            CPT,
            "97597",
            "Debridement (eg, high pressure waterjet with/without suction, sharp selective debridement with scissors, scalpel and forceps), open wound; first 20 sq cm or less",
        ),
        when="2026-07-01T10:10:00-04:00",
        enc=e["id"],
    )
    return [e, patient(n, gender="male", birth="1953-03-03"), dfu, ulcer, p], {
        "job": "treat",
        "rationale": "Home-health visit with sharp debridement and dressing of a diabetic foot ulcer: wound treatment",
    }


@case
def covid_exposure_test(n):
    e = encounter(
        n,
        start="2026-01-08T12:00:00-05:00",
        end="2026-01-08T12:10:00-05:00",
        reasons=[cc(ICD10, "Z20.822", "Contact with and (suspected) exposure to COVID-19")],
    )
    pcr = observation(
        n,
        "pcr",
        cc(
            LOINC,
            "94500-6",
            "SARS-CoV-2 (COVID-19) RNA [Presence] in Respiratory system specimen by NAA with probe detection",
        ),
        when="2026-01-08T12:05:00-05:00",
        enc=e["id"],
        value={"valueCodeableConcept": cc(SCT, "260385009", "Negative (qualifier value)")},
    )
    return [e, patient(n, birth="1998-08-08"), pcr], {
        "job": "diagnose",
        "rationale": "Test after a COVID-19 exposure (Z20.822): a Z code, but not a preventive one; the job is 'do I have it?'",
    }


@case
def well_woman_pap(n):
    e = encounter(
        n,
        start="2026-03-25T09:00:00-04:00",
        end="2026-03-25T09:40:00-04:00",
        types=T(*CHECKUP),
        reasons=[
            cc(
                ICD10,
                "Z01.419",
                "Encounter for gynecological examination (general) (routine) without abnormal findings",
            ),
            cc(ICD10, "Z12.4", "Encounter for screening for malignant neoplasm of cervix"),
        ],
    )
    p = procedure(
        n,
        "pap",
        cc(
            HCPCS,
            "Q0091",
            "Screening Papanicolaou smear; obtaining, preparing and conveyance of cervical or vaginal smear to laboratory",
        ),
        when="2026-03-25T09:20:00-04:00",
        enc=e["id"],
    )
    return [e, patient(n, birth="1988-08-18"), p], {
        "job": "keep_well",
        "rationale": "Well-woman exam with screening Pap smear: prevention",
    }


@case
def diabetes_screening(n):
    e = encounter(
        n,
        start="2026-04-04T08:00:00-04:00",
        end="2026-04-04T08:15:00-04:00",
        reasons=[cc(ICD10, "Z13.1", "Encounter for screening for diabetes mellitus")],
    )
    a1c = observation(
        n,
        "a1c",
        cc(LOINC, "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood"),
        when="2026-04-04T08:05:00-04:00",
        enc=e["id"],
        value=qty(5.4, "%"),
    )
    return [e, patient(n, gender="male", birth="1980-04-04"), a1c], {
        "job": "keep_well",
        "rationale": "Diabetes screening (Z13.1) with normal HbA1c: prevention",
    }


@case
def cancer_surveillance(n):
    hx = condition(
        n,
        "hx",
        cc(ICD10, "Z85.3", "Personal history of malignant neoplasm of breast"),
        recorded="2022-01-01T10:00:00-05:00",
        clinical="resolved",
        category="problem-list-item",
    )
    e = encounter(
        n,
        start="2026-11-10T09:00:00-05:00",
        end="2026-11-10T09:30:00-05:00",
        types=T(*FOLLOWUP),
        reasons=[
            cc(
                ICD10,
                "Z08",
                "Encounter for follow-up examination after completed treatment for malignant neoplasm",
            ),
            cc(ICD10, "Z85.3", "Personal history of malignant neoplasm of breast"),
        ],
    )
    return [e, patient(n, birth="1963-01-13"), hx], {
        "job": "keep_well",
        "rationale": "Oncology surveillance visit after completed breast-cancer treatment (Z08, Z85.3): follow-up, not oncology treatment",
    }


@case
def well_child(n):
    e = encounter(
        n,
        start="2026-06-30T09:00:00-04:00",
        end="2026-06-30T09:45:00-04:00",
        types=T(*WELL),
        reasons=[
            cc(
                ICD10,
                "Z00.129",
                "Encounter for routine child health examination without abnormal findings",
            )
        ],
    )
    imm = {
        "resourceType": "Immunization",
        "id": f"{n}-imm",
        "status": "completed",
        "vaccineCode": cc(CVX, "03", "measles, mumps and rubella virus vaccine"),
        "patient": ref("Patient", f"{n}-pat"),
        "encounter": ref("Encounter", e["id"]),
        "occurrenceDateTime": "2026-06-30T09:30:00-04:00",
        "primarySource": True,
    }
    return [e, patient(n, gender="male", birth="2022-06-30"), imm], {
        "job": "keep_well",
        "rationale": "Four-year well-child check with MMR booster: prevention",
    }


# ---------------------------------------------------------------- claims (CARIN BB ExplanationOfBenefit, Claim)
@case
def eob_inpatient_appendectomy(n):
    e = eob(
        n,
        profile="C4BB-ExplanationOfBenefit-Inpatient-Institutional",
        claim_type="institutional",
        subtype="inpatient",
        start="2026-06-02",
        end="2026-06-03",
        diagnoses=[
            (ICD10, "K35.80", "Unspecified acute appendicitis", "principal"),
            (ICD10, "K35.80", "Unspecified acute appendicitis", "admitting"),
        ],
        procedures=[
            (
                PCS,
                "0DTJ4ZZ",
                "Resection of Appendix, Percutaneous Endoscopic Approach",
                "2026-06-02",
            )
        ],
        supporting=[
            {
                "category": cc(
                    "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBSupportingInfoType",
                    "admissionperiod",
                ),
                "timingPeriod": {"start": "2026-06-02", "end": "2026-06-03"},
            },
            {
                "category": cc(
                    "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBSupportingInfoType", "drg"
                ),
                "code": cc(
                    "https://www.cms.gov/Medicare/Medicare-Fee-for-Service-Payment/AcuteInpatientPPS/MS-DRG-Classifications-and-Software",
                    "343",
                    "Appendectomy without complicated principal diagnosis without CC/MCC",
                ),
            },
        ],
        items=[
            line(CPT, "44970", "Laparoscopy, surgical, appendectomy", revenue="0360", dx_seq=[1]),
            line(CPT, "99222", "Initial hospital inpatient care", revenue="0120", dx_seq=[1]),
        ],
    )
    return [e, patient(n, birth="2001-01-11"), *payer_context(n)], {
        "job": "treat",
        "rationale": "Inpatient institutional claim: acute appendicitis, ICD-10-PCS laparoscopic appendectomy, DRG 343: surgical admission",
    }


@case
def eob_inpatient_tka(n):
    e = eob(
        n,
        profile="C4BB-ExplanationOfBenefit-Inpatient-Institutional",
        claim_type="institutional",
        subtype="inpatient",
        start="2026-08-03",
        end="2026-08-05",
        diagnoses=[(ICD10, "M17.11", "Unilateral primary osteoarthritis, right knee", "principal")],
        procedures=[
            (
                PCS,
                "0SRC0J9",
                "Replacement of Right Knee Joint with Synthetic Substitute, Cemented, Open Approach",
                "2026-08-03",
            )
        ],
        supporting=[
            {
                "category": cc(
                    "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBSupportingInfoType", "drg"
                ),
                "code": cc(
                    "https://www.cms.gov/Medicare/Medicare-Fee-for-Service-Payment/AcuteInpatientPPS/MS-DRG-Classifications-and-Software",
                    "470",
                    "Major hip and knee joint replacement or reattachment of lower extremity without MCC",
                ),
            }
        ],
        items=[line(CPT, "27447", "Arthroplasty, knee, total", revenue="0360", dx_seq=[1])],
    )
    return [e, patient(n, birth="1951-11-11"), *payer_context(n)], {
        "job": "treat",
        "rationale": "Inpatient claim for total knee replacement (DRG 470): surgery",
    }


@case
def eob_outpatient_ed_chest_pain(n):
    e = eob(
        n,
        profile="C4BB-ExplanationOfBenefit-Outpatient-Institutional",
        claim_type="institutional",
        subtype="outpatient",
        start="2026-11-03",
        end="2026-11-04",
        diagnoses=[
            (ICD10, "R07.89", "Other chest pain", "principal"),
            (ICD10, "R07.9", "Chest pain, unspecified", "other"),
        ],
        supporting=[
            {
                "category": cc(
                    "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBSupportingInfoType",
                    "typeofbill",
                ),
                "code": cc(
                    "https://www.nubc.org/CodeSystem/TypeOfBill",
                    "0131",
                    "Hospital outpatient, admit through discharge",
                ),
            }
        ],
        items=[
            line(
                CPT,
                "99284",
                "Emergency department visit, moderate medical decision making",
                revenue="0450",
                dx_seq=[1],
            ),
            line(
                CPT,
                "93005",
                "Electrocardiogram, routine ECG with at least 12 leads; tracing only",
                revenue="0730",
                dx_seq=[1],
            ),
            line(CPT, "84484", "Troponin, quantitative", revenue="0300", dx_seq=[1], qty=2),
            line(
                CPT, "71046", "Radiologic examination, chest; 2 views", revenue="0320", dx_seq=[1]
            ),
        ],
    )
    return [e, patient(n, gender="male", birth="1969-07-14"), *payer_context(n)], {
        "job": "diagnose",
        "rationale": "Outpatient institutional ED claim: chest pain with ECG, troponins, chest X-ray, symptom code as final diagnosis: a workup",
    }


@case
def eob_outpatient_screening_colonoscopy(n):
    e = eob(
        n,
        profile="C4BB-ExplanationOfBenefit-Outpatient-Institutional",
        claim_type="institutional",
        subtype="outpatient",
        start="2026-05-20",
        diagnoses=[
            (
                ICD10,
                "Z12.11",
                "Encounter for screening for malignant neoplasm of colon",
                "principal",
            )
        ],
        items=[
            line(
                HCPCS,
                "G0121",
                "Colorectal cancer screening; colonoscopy on individual not meeting criteria for high risk",
                revenue="0750",
                dx_seq=[1],
            )
        ],
    )
    return [e, patient(n, gender="male", birth="1975-05-20"), *payer_context(n)], {
        "job": "keep_well",
        "rationale": "Facility claim for average-risk screening colonoscopy (Z12.11, G0121): prevention",
    }


@case
def eob_professional_dm_htn_followup(n):
    e = eob(
        n,
        profile="C4BB-ExplanationOfBenefit-Professional-NonClinician",
        claim_type="professional",
        start="2026-09-16",
        diagnoses=[
            (ICD10, "E11.65", "Type 2 diabetes mellitus with hyperglycemia", "principal"),
            (ICD10, "I10", "Essential (primary) hypertension", "secondary"),
        ],
        items=[
            line(
                CPT,
                "99214",
                "Office or other outpatient visit for the evaluation and management of an established patient, moderate MDM",
                dx_seq=[1, 2],
            ),
            line(CPT, "83036", "Hemoglobin; glycosylated (A1C)", dx_seq=[1]),
        ],
    )
    return [e, patient(n, gender="male", birth="1961-01-21"), *payer_context(n)], {
        "job": "keep_well",
        "rationale": "Professional claim: established-patient visit with HbA1c for type 2 diabetes and hypertension: chronic-disease follow-up",
    }


@case
def eob_professional_preventive(n):
    e = eob(
        n,
        profile="C4BB-ExplanationOfBenefit-Professional-NonClinician",
        claim_type="professional",
        start="2026-10-15",
        diagnoses=[
            (
                ICD10,
                "Z00.00",
                "Encounter for general adult medical examination without abnormal findings",
                "principal",
            ),
            (ICD10, "Z23", "Encounter for immunization", "secondary"),
        ],
        items=[
            line(
                CPT,
                "99396",
                "Periodic comprehensive preventive medicine reevaluation, established patient; 40-64 years",
                dx_seq=[1],
            ),
            line(
                CPT,
                "90686",
                "Influenza virus vaccine, quadrivalent, split virus, preservative free, 0.5 mL, intramuscular",
                dx_seq=[2],
            ),
            line(CPT, "90471", "Immunization administration; 1 vaccine", dx_seq=[2]),
        ],
    )
    return [e, patient(n, birth="1970-10-15"), *payer_context(n)], {
        "job": "keep_well",
        "rationale": "Professional claim: preventive visit 99396 plus flu vaccine",
    }


@case
def eob_professional_chemo(n):
    e = eob(
        n,
        profile="C4BB-ExplanationOfBenefit-Professional-NonClinician",
        claim_type="professional",
        start="2026-03-04",
        diagnoses=[
            (ICD10, "Z51.11", "Encounter for antineoplastic chemotherapy", "principal"),
            (
                ICD10,
                "C50.911",
                "Malignant neoplasm of unspecified site of right female breast",
                "secondary",
            ),
        ],
        items=[
            line(
                CPT,
                "96413",
                "Chemotherapy administration, intravenous infusion technique; up to 1 hour",
                dx_seq=[1, 2],
            ),
            line(
                HCPCS,
                "J9355",
                "Injection, trastuzumab, excludes biosimilar, 10 mg",
                dx_seq=[2],
                qty=42,
            ),
        ],
    )
    return [e, patient(n, birth="1968-11-10"), *payer_context(n)], {
        "job": "treat",
        "rationale": "Professional claim for chemotherapy administration with trastuzumab for breast cancer",
    }


@case
def eob_professional_dme_strips(n):
    e = eob(
        n,
        profile="C4BB-ExplanationOfBenefit-Professional-NonClinician",
        claim_type="professional",
        start="2026-07-01",
        diagnoses=[(ICD10, "E11.9", "Type 2 diabetes mellitus without complications", "principal")],
        items=[
            line(
                HCPCS,
                "A4253",
                "Blood glucose test or reagent strips for home blood glucose monitor, per 50 strips",
                dx_seq=[1],
                qty=2,
            ),
            line(HCPCS, "A4259", "Lancets, per box of 100", dx_seq=[1]),
        ],
    )
    return [e, patient(n, birth="1957-07-17"), *payer_context(n)], {
        "job": "keep_well",
        "rationale": "Supplier (non-clinician) claim for glucose test strips and lancets for type 2 diabetes: supplies for chronic self-monitoring",
    }


def _pharmacy(n, ndc, ndc_display, rx, rx_display, days, refill, qty_):
    supp = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBSupportingInfoType"
    product = {
        "coding": [
            {"system": NDC, "code": ndc, "display": ndc_display},
            {"system": RXNORM, "code": rx, "display": rx_display},
        ]
    }
    return eob(
        n,
        profile="C4BB-ExplanationOfBenefit-Pharmacy",
        claim_type="pharmacy",
        start="2026-08-20",
        supporting=[
            {"category": cc(supp, "dayssupply"), "valueQuantity": {"value": days}},
            {"category": cc(supp, "refillnum"), "valueQuantity": {"value": refill}},
            {
                "category": cc(supp, "brandgenericindicator"),
                "code": cc(
                    "http://hl7.org/fhir/us/carin-bb/CodeSystem/NCPDPBrandGenericIndicator",
                    "4",
                    "Generic",
                ),
            },
        ],
        items=[{"productOrService": product, "quantity": {"value": qty_}}],
    )


@case
def eob_pharmacy_metformin(n):
    e = _pharmacy(
        n,
        "00093104801",
        "Metformin Hydrochloride 500 MG Oral Tablet",
        "861007",
        "metformin hydrochloride 500 MG Oral Tablet",
        90,
        3,
        180,
    )
    return [e, patient(n, gender="male", birth="1960-01-10"), *payer_context(n)], {
        "job": "keep_well",
        "rationale": "Pharmacy claim: 90-day third refill of metformin (no diagnosis on the claim, as is usual for pharmacy): maintenance medication for chronic disease",
    }


@case
def eob_pharmacy_lisinopril(n):
    e = _pharmacy(
        n,
        "68180051301",
        "Lisinopril 10 MG Oral Tablet",
        "314076",
        "lisinopril 10 MG Oral Tablet",
        30,
        5,
        30,
    )
    htn = condition(
        n,
        "htn",
        cc(ICD10, "I10", "Essential (primary) hypertension"),
        recorded="2021-01-01T10:00:00-05:00",
        category="problem-list-item",
    )
    return [e, patient(n, birth="1959-09-29"), *payer_context(n), htn], {
        "job": "keep_well",
        "rationale": "Pharmacy claim: lisinopril refill #5 for hypertension known since 2021: maintenance therapy",
    }


@case
def eob_pharmacy_amoxicillin(n):
    e = _pharmacy(
        n,
        "65862001701",
        "Amoxicillin 500 MG Oral Capsule",
        "308191",
        "amoxicillin 500 MG Oral Capsule",
        10,
        0,
        30,
    )
    return [e, patient(n, birth="1999-09-09"), *payer_context(n)], {
        "job": "treat",
        "rationale": "Pharmacy claim: new 10-day amoxicillin fill, no refills: an acute treatment course",
    }


@case
def eob_oral_preventive(n):
    e = eob(
        n,
        profile="C4BB-ExplanationOfBenefit-Oral",
        claim_type="oral",
        start="2026-03-17",
        items=[
            line(CDT, "D0120", "Periodic oral evaluation - established patient"),
            line(CDT, "D1110", "Prophylaxis - adult"),
            line(CDT, "D0274", "Bitewings - four radiographic images"),
        ],
    )
    return [e, patient(n, birth="1983-03-17"), *payer_context(n)], {
        "job": "keep_well",
        "rationale": "Dental claim: recall exam, cleaning, bitewings: preventive dentistry",
    }


@case
def eob_oral_extraction(n):
    tooth = {
        "bodySite": cc(
            "http://terminology.hl7.org/CodeSystem/ADAUniversalToothDesignation", "30", "Tooth 30"
        )
    }
    e = eob(
        n,
        profile="C4BB-ExplanationOfBenefit-Oral",
        claim_type="oral",
        start="2026-04-27",
        diagnoses=[(ICD10, "K04.7", "Periapical abscess without sinus", "principal")],
        items=[
            line(CDT, "D0140", "Limited oral evaluation - problem focused"),
            line(CDT, "D0220", "Intraoral - periapical first radiographic image"),
            line(
                CDT,
                "D7140",
                "Extraction, erupted tooth or exposed root (elevation and/or forceps removal)",
                extra=tooth,
            ),
        ],
    )
    return [e, patient(n, gender="male", birth="1971-04-27"), *payer_context(n)], {
        "job": "treat",
        "rationale": "Dental claim: problem-focused exam, X-ray and extraction of an abscessed tooth: the extraction is the treatment",
    }


@case
def eob_entered_in_error(n):
    e = eob(
        n,
        profile="C4BB-ExplanationOfBenefit-Professional-NonClinician",
        claim_type="professional",
        start="2026-02-02",
        status="entered-in-error",
        diagnoses=[(ICD10, "J06.9", "Acute upper respiratory infection, unspecified", "principal")],
        items=[
            line(
                CPT,
                "99213",
                "Office or other outpatient visit, established patient, low MDM",
                dx_seq=[1],
            )
        ],
    )
    return [e, patient(n), *payer_context(n)], {
        "job": "excluded",
        "rationale": "ExplanationOfBenefit with status entered-in-error",
    }


@case
def eob_cancelled(n):
    e = eob(
        n,
        profile="C4BB-ExplanationOfBenefit-Outpatient-Institutional",
        claim_type="institutional",
        subtype="outpatient",
        start="2026-02-09",
        status="cancelled",
        diagnoses=[(ICD10, "M54.50", "Low back pain, unspecified", "principal")],
        items=[
            line(
                CPT,
                "72148",
                "Magnetic resonance imaging, spinal canal and contents, lumbar; without contrast",
                revenue="0610",
                dx_seq=[1],
            )
        ],
    )
    return [e, patient(n, gender="male"), *payer_context(n)], {
        "job": "excluded",
        "rationale": "Cancelled ExplanationOfBenefit (claim withdrawn)",
    }


@case
def claim_laceration(n):
    c = claim(
        n,
        claim_type="professional",
        created="2026-02-14T10:00:00-05:00",
        diagnoses=[
            (ICD10, "S61.411A", "Laceration without foreign body of right hand, initial encounter"),
            (ICD10, "W26.0XXA", "Contact with knife, initial encounter"),
        ],
        items=[
            line(
                CPT,
                "12002",
                "Simple repair of superficial wounds of extremities; 2.6 cm to 7.5 cm",
                dx_seq=[1, 2],
                extra={"servicedDate": "2026-02-13"},
            ),
            line(
                CPT,
                "90715",
                "Tetanus, diphtheria toxoids and acellular pertussis vaccine (Tdap)",
                dx_seq=[1],
                extra={"servicedDate": "2026-02-13"},
            ),
        ],
    )
    return [c, patient(n, gender="male", birth="1985-05-25"), *payer_context(n)], {
        "job": "treat",
        "rationale": "Professional Claim: knife laceration of hand repaired (12002) with tetanus booster: wound repair",
    }


@case
def claim_office_sinusitis(n):
    c = claim(
        n,
        claim_type="professional",
        created="2026-03-02T10:00:00-05:00",
        diagnoses=[(ICD10, "J01.90", "Acute sinusitis, unspecified")],
        items=[
            line(
                CPT,
                "99213",
                "Office or other outpatient visit for the evaluation and management of an established patient, low MDM",
                dx_seq=[1],
                extra={"servicedDate": "2026-03-01"},
            )
        ],
    )
    return [c, patient(n, birth="1981-08-01"), *payer_context(n)], {
        "job": "diagnose",
        "rationale": "Professional Claim: single sick visit with a new acute sinusitis diagnosis: an acute problem assessed",
    }


@case
def claim_cancelled(n):
    c = claim(
        n,
        claim_type="professional",
        created="2026-03-03T10:00:00-05:00",
        status="cancelled",
        diagnoses=[
            (
                ICD10,
                "Z00.00",
                "Encounter for general adult medical examination without abnormal findings",
            )
        ],
        items=[
            line(
                CPT,
                "99396",
                "Periodic comprehensive preventive medicine reevaluation; 40-64 years",
                dx_seq=[1],
            )
        ],
    )
    return [c, patient(n), *payer_context(n)], {
        "job": "excluded",
        "rationale": "Claim with status cancelled",
    }


@case
def claim_preauthorization(n):
    c = claim(
        n,
        claim_type="professional",
        created="2026-11-20T10:00:00-05:00",
        use="preauthorization",
        diagnoses=[(ICD10, "M54.16", "Radiculopathy, lumbar region")],
        items=[
            line(
                CPT,
                "72148",
                "Magnetic resonance imaging, spinal canal and contents, lumbar; without contrast",
                dx_seq=[1],
            )
        ],
    )
    return [c, patient(n, gender="male", birth="1977-07-07"), *payer_context(n)], {
        "job": "upcoming",
        "flags": ["upcoming"],
        "rationale": "Claim with use=preauthorization for a lumbar MRI: a request to approve future care, not care that happened",
    }


def main() -> None:
    out = []
    for i, fn in enumerate(CASES, start=1):
        name = f"rs-{i:03d}"
        resources, exp = fn(name)
        fname = write_case(name, resources)
        focal = f"{resources[0]['resourceType']}/{resources[0]['id']}"
        exp.setdefault("flags", [])
        out.append(
            {"file": fname, "focal": focal, **exp, "origin": "hand-written", "_fn": fn.__name__}
        )
    text = "".join(toml_case(c) + "\n" for c in out)
    (HERE / "expected_handwritten.toml").write_text(text)
    print(f"{len(out)} hand-written cases")


if __name__ == "__main__":
    main()
