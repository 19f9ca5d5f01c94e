"""Outcome and experience instruments of the default pack: PROMIS Global Health v1.2,
EQ-5D-5L, Oxford Knee Score, KOOS JR and a recommend-0-to-10 question.

Expected values are worked out by hand from the published tables, not from the
pack, so a wrong table entry fails here:
- PROMIS GPH/GMH raw -> T: R. D. Hays, "Steps to produce raw score to theta
  estimates" for the Global Physical (6/19/2009) and Global Mental (6/22/2009)
  Health items; Global07r pain recode 0 -> 5, 1-3 -> 4, 4-6 -> 3, 7-9 -> 2,
  10 -> 1; v1.2 prints Global08r / Global10r already reversed (5 = None / Never).
- Oxford Knee Score: 12 items 0-4, total 0-48; bands 0-19 severe, 20-29 moderate
  to severe, 30-39 mild to moderate, 40-48 satisfactory (Kalairajah et al. 2005).
- KOOS JR: raw 0-28 -> interval score, HSS table (Lyman et al. 2016), raw 7 ->
  68.284.
"""

from __future__ import annotations

from typing import Any

import pytest

from mappings.errors import RulePackError
from mappings.instruments import Measurement, measure_response, read_answers
from mappings.model import Flag, SourceRef
from mappings.questionnaire_response import map_instrument_responses
from mappings.rulepack import DEFAULT_PACK, RulePack, parse_rule_pack

LOINC = "http://loinc.org"

# PROMIS-10 v1.2 items, Global01 .. Global10.
G01, G02, G03, G04, G05, G06, G07, G08, G09, G10 = (
    "61577-3",
    "61578-1",
    "61579-9",
    "61580-7",
    "61581-5",
    "61582-3",
    "61583-1",
    "61584-9",
    "61585-6",
    "61586-4",
)
RATING = {5: "LA9206-9", 4: "LA13913-1", 3: "LA8967-7", 2: "LA8968-5", 1: "LA8969-3"}
FATIGUE = {"None": "LA137-2", "Mild": "LA6752-5", "Moderate": "LA6751-7", "Severe": "LA6750-9"}
FREQUENCY = {"Never": "LA6270-8", "Rarely": "LA10066-1", "Sometimes": "LA10082-8"}

EQ5D = (
    "eq5d5l-mobility",
    "eq5d5l-self-care",
    "eq5d5l-usual-activities",
    "eq5d5l-pain-discomfort",
    "eq5d5l-anxiety-depression",
)
OKS = tuple(f"oks-{i}" for i in range(1, 13))
KOOSJR = ("82325-2", "82326-0", "82327-8", "82328-6", "82329-4", "82330-2", "82331-0")
KOOSJR_LA = {0: "LA137-2", 1: "LA6752-5", 2: "LA6751-7", 3: "LA6750-9"}


def coding(code: str) -> dict[str, Any]:
    return {"valueCoding": {"system": LOINC, "code": code}}


def integer(value: int) -> dict[str, Any]:
    return {"valueInteger": value}


def response(
    questionnaire: str, answers: dict[str, dict[str, Any]], status: str = "completed"
) -> dict[str, Any]:
    return {
        "resourceType": "QuestionnaireResponse",
        "id": "r1",
        "questionnaire": questionnaire,
        "status": status,
        "subject": {"reference": "Patient/p1"},
        "authored": "2025-03-01T10:00:00Z",
        "item": [{"linkId": link, "answer": [value]} for link, value in answers.items()],
    }


def measure(pack: RulePack, instrument_id: str, resource: dict[str, Any]) -> Measurement:
    instrument = next(i for i in pack.instruments if i.id == instrument_id)
    return measure_response(read_answers(resource), instrument, resource["status"])


def scores(measurement: Measurement) -> dict[str, tuple[float, str | None]]:
    return {s.scale: (s.value, s.band) for s in measurement.scores}


# --------------------------------------------------------------------- PROMIS-10

PROMIS = "http://fhir-journey.example/Questionnaire/promis10"


def promis(**overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A whole PROMIS-10: every rated item 'Good' (3), pain 5, fatigue Moderate,
    emotional problems Sometimes."""
    answers = {
        G01: coding(RATING[3]),
        G02: coding(RATING[3]),
        G03: coding(RATING[3]),
        G04: coding(RATING[3]),
        G05: coding(RATING[3]),
        G06: integer(3),
        G07: integer(5),
        G08: coding(FATIGUE["Moderate"]),
        G09: coding(RATING[3]),
        G10: coding(FREQUENCY["Sometimes"]),
    }
    answers.update(overrides)
    return answers


def test_promis10_complete_response_is_scored_as_t_scores(pack: RulePack) -> None:
    m = measure(pack, "promis10", response(PROMIS, promis()))
    # GPH: Global03 3 + Global06 3 + Global07r pain 5 -> 3 + Global08r Moderate 3 = 12;
    # Hays GPH table: raw 12 -> T 39.8.
    # GMH: Global02 3 + Global04 3 + Global05 3 + Global10r Sometimes 3 = 12;
    # Hays GMH table: raw 12 -> T 43.5.
    assert scores(m) == {"gph": (39.8, None), "gmh": (43.5, None)}
    assert m.missing is None
    assert Flag.INCOMPLETE not in m.flags


def test_promis10_best_and_worst_answers_reach_the_ends_of_the_tables(pack: RulePack) -> None:
    best = promis(
        **{
            G02: coding(RATING[5]),
            G03: coding(RATING[5]),
            G04: coding(RATING[5]),
            G05: coding(RATING[5]),
            G06: integer(5),
            G07: integer(0),
            G08: coding(FATIGUE["None"]),
            G10: coding(FREQUENCY["Never"]),
        }
    )
    # All four items of each scale at 5: raw 20 -> GPH 67.7, GMH 67.6 (Hays).
    assert scores(measure(pack, "promis10", response(PROMIS, best))) == {
        "gph": (67.7, None),
        "gmh": (67.6, None),
    }
    worst = promis(
        **{
            G02: coding(RATING[1]),
            G03: coding(RATING[1]),
            G04: coding(RATING[1]),
            G05: coding(RATING[1]),
            G06: integer(1),
            G07: integer(10),
            G08: integer(1),
            G10: integer(1),
        }
    )
    # All at 1 (pain 10 -> 1): raw 4 -> GPH 16.2, GMH 21.1 (Hays).
    assert scores(measure(pack, "promis10", response(PROMIS, worst))) == {
        "gph": (16.2, None),
        "gmh": (21.1, None),
    }


@pytest.mark.parametrize(
    ("pain", "recoded"),
    [(0, 5), (1, 4), (3, 4), (4, 3), (6, 3), (7, 2), (9, 2), (10, 1)],
)
def test_promis10_pain_0_to_10_is_recoded_to_1_to_5(
    pack: RulePack, pain: int, recoded: int
) -> None:
    m = measure(pack, "promis10", response(PROMIS, promis(**{G07: integer(pain)})))
    # GPH raw = 3 + 3 + recoded pain + 3 (Moderate fatigue).
    gph_table = {10: 34.9, 11: 37.4, 12: 39.8, 13: 42.3, 14: 44.9}  # Hays GPH
    assert scores(m)["gph"] == (gph_table[9 + recoded], None)


def test_promis10_fatigue_and_emotional_problems_are_read_reversed(pack: RulePack) -> None:
    # v1.2 scores Global08r None as 5 and Global10r Never as 5 (better health higher):
    # GPH raw 3 + 3 + 3 + 5 = 14 -> 44.9; GMH raw 3 + 3 + 3 + 5 = 14 -> 48.3 (Hays).
    m = measure(
        pack,
        "promis10",
        response(PROMIS, promis(**{G08: coding(FATIGUE["None"]), G10: coding(FREQUENCY["Never"])})),
    )
    assert scores(m) == {"gph": (44.9, None), "gmh": (48.3, None)}
    # Severe fatigue counts 2, less than Moderate's 3: raw 11 -> 37.4.
    m = measure(pack, "promis10", response(PROMIS, promis(**{G08: coding(FATIGUE["Severe"])})))
    assert scores(m)["gph"] == (37.4, None)


def test_promis10_pain_above_5_counts_only_on_the_pain_item(pack: RulePack) -> None:
    # 8 is a valid pain answer (0-10) but not a valid answer to a 1-5 item.
    m = measure(pack, "promis10", response(PROMIS, promis(**{G03: integer(8)})))
    assert "gph" not in scores(m)
    assert scores(m)["gmh"] == (43.5, None)
    assert Flag.INCOMPLETE in m.flags
    assert any("outside 1-5" in w for w in m.warnings)
    m = measure(pack, "promis10", response(PROMIS, promis(**{G07: integer(11)})))
    assert "gph" not in scores(m)
    assert any("outside 0-10" in w for w in m.warnings)


def test_promis10_incomplete_response_is_not_scored(pack: RulePack) -> None:
    answers = promis()
    del answers[G08]
    m = measure(pack, "promis10", response(PROMIS, answers))
    assert "gph" not in scores(m)
    assert Flag.INCOMPLETE in m.flags
    assert m.missing is not None
    assert "9 of 10 items answered" in m.missing
    m = measure(pack, "promis10", response(PROMIS, promis(), status="in-progress"))
    assert m.scores == ()
    assert Flag.INCOMPLETE in m.flags


def test_promis10_is_an_outcome_measure_in_the_journey(pack: RulePack) -> None:
    resource = response(PROMIS, promis())
    ref = SourceRef("clinic", "QuestionnaireResponse", "r1", "h:x")
    (record,) = map_instrument_responses([(ref, resource)], pack)
    assert record.rule_id == "questionnaire.outcome-measure"
    assert "39.8" in record.reason


# --------------------------------------------------------------------- EQ-5D-5L

EQ5D_Q = "http://fhir-journey.example/Questionnaire/eq5d5l"


def eq5d(levels: tuple[int, ...], vas: int | None) -> dict[str, dict[str, Any]]:
    answers = {item: integer(level) for item, level in zip(EQ5D, levels, strict=True)}
    if vas is not None:
        answers["eq5d5l-vas"] = integer(vas)
    return answers


def test_eq5d5l_profile_and_vas(pack: RulePack) -> None:
    m = measure(pack, "eq5d5l", response(EQ5D_Q, eq5d((1, 1, 2, 2, 3), 75)))
    # The five levels side by side; the VAS as given. No index: no value set is configured.
    assert scores(m) == {"profile": (11223.0, None), "vas": (75.0, None)}
    assert Flag.INCOMPLETE not in m.flags


def test_eq5d5l_incomplete_and_out_of_range(pack: RulePack) -> None:
    m = measure(pack, "eq5d5l", response(EQ5D_Q, eq5d((1, 1, 2, 2, 3), None)))
    assert scores(m) == {"profile": (11223.0, None)}
    assert Flag.INCOMPLETE in m.flags
    # Level 6 does not exist; VAS 100 is the top of its own 0-100 range.
    m = measure(pack, "eq5d5l", response(EQ5D_Q, eq5d((1, 6, 2, 2, 3), 100)))
    assert scores(m) == {"vas": (100.0, None)}
    assert Flag.INCOMPLETE in m.flags


# --------------------------------------------------------------------- Oxford Knee Score

OKS_Q = "http://fhir-journey.example/Questionnaire/oks"


@pytest.mark.parametrize(
    ("items", "total", "band"),
    [
        ([0] * 12, 0, "severe"),
        ([2] * 6 + [1] * 6, 18, "severe"),
        ([2] * 10 + [0] * 2, 20, "moderate to severe"),
        ([3] * 12, 36, "mild to moderate"),
        ([4] * 4 + [3] * 8, 40, "satisfactory"),
        ([4] * 12, 48, "satisfactory"),
    ],
)
def test_oxford_knee_score_total_and_band(
    pack: RulePack, items: list[int], total: int, band: str
) -> None:
    answers = {link: integer(v) for link, v in zip(OKS, items, strict=True)}
    m = measure(pack, "oks", response(OKS_Q, answers))
    assert scores(m) == {"total": (float(total), band)}


def test_oxford_knee_score_incomplete(pack: RulePack) -> None:
    answers = {link: integer(4) for link in OKS[:11]}
    m = measure(pack, "oks", response(OKS_Q, answers))
    assert m.scores == ()
    assert Flag.INCOMPLETE in m.flags
    oks = next(i for i in pack.instruments if i.id == "oks")
    assert oks.scales[0].reliable_change == 5
    assert oks.scales[0].better == "higher"


# --------------------------------------------------------------------- KOOS JR

KOOSJR_Q = "http://loinc.org/q/82324-5"


def test_koosjr_interval_score_from_coded_answers(pack: RulePack) -> None:
    # Moderate 2, Moderate 2, Mild 1, ... raw 2+2+1+0+0+1+1 = 7 -> 68.284 (HSS table).
    raw = [2, 2, 1, 0, 0, 1, 1]
    answers = {link: coding(KOOSJR_LA[v]) for link, v in zip(KOOSJR, raw, strict=True)}
    m = measure(pack, "koosjr", response(KOOSJR_Q, answers))
    assert scores(m) == {"interval": (68.284, None)}


@pytest.mark.parametrize(("raw", "interval"), [(0, 100.0), (28, 0.0)])
def test_koosjr_ends_of_the_table(pack: RulePack, raw: int, interval: float) -> None:
    per_item = [4] * (raw // 4) + [0] * (7 - raw // 4)
    answers = {link: integer(v) for link, v in zip(KOOSJR, per_item, strict=True)}
    m = measure(pack, "koosjr", response(KOOSJR_Q, answers))
    assert scores(m) == {"interval": (interval, None)}


def test_koosjr_table_is_whole_and_falls_as_the_raw_sum_rises(pack: RulePack) -> None:
    koosjr = next(i for i in pack.instruments if i.id == "koosjr")
    table = koosjr.scales[0].table
    assert sorted(table) == list(range(29))
    values = [table[raw] for raw in range(29)]
    assert values == sorted(values, reverse=True)


def test_koosjr_incomplete(pack: RulePack) -> None:
    answers = {link: integer(1) for link in KOOSJR[:6]}
    m = measure(pack, "koosjr", response(KOOSJR_Q, answers))
    assert m.scores == ()
    assert Flag.INCOMPLETE in m.flags


# --------------------------------------------------------------------- recommend 0-10

RECOMMEND_Q = "http://fhir-journey.example/Questionnaire/recommend"


@pytest.mark.parametrize(
    ("rating", "band"),
    [
        (0, "detractor"),
        (6, "detractor"),
        (7, "passive"),
        (8, "passive"),
        (9, "promoter"),
        (10, "promoter"),
    ],
)
def test_recommend_bands(pack: RulePack, rating: int, band: str) -> None:
    m = measure(pack, "recommend", response(RECOMMEND_Q, {"recommend-0-10": integer(rating)}))
    assert scores(m) == {"rating": (float(rating), band)}


def test_recommend_unanswered_or_out_of_range_is_not_scored(pack: RulePack) -> None:
    m = measure(pack, "recommend", response(RECOMMEND_Q, {"recommend-0-10": integer(11)}))
    assert m.scores == ()
    assert Flag.INCOMPLETE in m.flags
    resource = response(RECOMMEND_Q, {"recommend-0-10": integer(9)})
    ref = SourceRef("clinic", "QuestionnaireResponse", "r1", "h:x")
    (record,) = map_instrument_responses([(ref, resource)], pack)
    assert record.rule_id == "questionnaire.experience-rating"
    assert record.band == "promoter"


# --------------------------------------------------------------------- item_ranges in the pack


def test_item_ranges_must_name_items_of_the_instrument(pack: RulePack) -> None:
    text = DEFAULT_PACK.read_text(encoding="utf-8").replace(
        'item_ranges = { "61583-1" = [0, 10] }', 'item_ranges = { "99999-9" = [0, 10] }'
    )
    with pytest.raises(RulePackError, match="item_ranges"):
        parse_rule_pack(text, "pack.toml")
    promis10 = next(i for i in pack.instruments if i.id == "promis10")
    assert promis10.item_range(G07) == (0, 10)
    assert promis10.item_range(G03) == (1, 5)
