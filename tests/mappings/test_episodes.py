"""Episode rules the review set does not reach: upcoming and undated records, a rating
of a visit for two concerns, concerns by SNOMED CT code and by ICD-10 (WHO)."""

from __future__ import annotations

from mappings.episodes import ShownRecord, build_episodes, episode_json
from mappings.model import Flag, Job
from mappings.rulepack import RulePack

ICD = "http://hl7.org/fhir/sid/icd-10-cm"
AS_OF = "2026-06-01T00:00:00Z"


def record(rid: str, job: Job, start: str | None, *codes: str, **extra: object) -> ShownRecord:
    return ShownRecord(
        rid,
        job,
        start,
        "clinic",
        "Encounter",
        "ambulatory",
        tuple(codes),
        **extra,  # type: ignore[arg-type]
    )


def episodes(pack: RulePack, *items: ShownRecord) -> dict[str, dict[str, object]]:
    built = [episode_json(e, AS_OF) for e in build_episodes("p", items, pack)]
    return {str(e["concern"]["id"]): e for e in built}  # type: ignore[index]


def test_an_upcoming_visit_is_listed_but_is_no_contact(pack: RulePack) -> None:
    got = episodes(
        pack,
        record("v1", Job.DIAGNOSE, "2026-05-01T09:00:00Z", f"{ICD}|I10"),
        record("v2", Job.KEEP_WELL, "2026-09-01T09:00:00Z", f"{ICD}|I10", flags=(Flag.UPCOMING,)),
    )
    hypertension = got["icd10cm:I10"]
    assert [r["id"] for r in hypertension["records"]] == ["v1", "v2"]  # type: ignore[index]
    assert hypertension["contacts"] == {"diagnose": 1}
    assert hypertension["status"] == "being_diagnosed"
    assert hypertension["last_contact"] == "2026-05-01T09:00:00Z"


def test_an_undated_record_joins_its_concerns_first_episode_without_splitting(
    pack: RulePack,
) -> None:
    got = episodes(
        pack,
        record("undated", Job.TREAT, None, f"{ICD}|J45.909"),
        record("v1", Job.DIAGNOSE, "2026-03-01T09:00:00Z", f"{ICD}|J45.909"),
    )
    asthma = got["icd10cm:J45"]
    assert {r["id"] for r in asthma["records"]} == {"undated", "v1"}  # type: ignore[index]
    assert asthma["start"] == "2026-03-01T09:00:00Z"


def test_a_rating_of_a_visit_for_two_concerns_joins_both(pack: RulePack) -> None:
    got = episodes(
        pack,
        record("v1", Job.TREAT, "2026-05-01T09:00:00Z", f"{ICD}|E11.9", f"{ICD}|F32.1"),
        ShownRecord(
            "s1",
            Job.TREAT,
            "2026-05-03T09:00:00Z",
            "clinic",
            "QuestionnaireResponse",
            "questionnaire",
            fulfilment_score=5,
        ),
    )
    for concern in ("type2_diabetes", "depression"):
        fulfilment = got[concern]["fulfilment"]
        assert fulfilment["records"] == ["s1"]  # type: ignore[index]
        assert got[concern]["stages"] == [  # a rating is no stage
            {"job": "treat", "start": "2026-05-01T09:00:00Z", "end": "2026-05-01T09:00:00Z",
             "records": ["v1"]}
        ]  # fmt: skip
    assert "general" not in got


def test_concerns_the_pack_does_not_list_by_snomed_and_who_icd10(pack: RulePack) -> None:
    got = episodes(
        pack,
        record("v1", Job.DIAGNOSE, "2026-05-01T09:00:00Z", "http://snomed.info/sct|195662009"),
        record("v2", Job.DIAGNOSE, "2026-05-02T09:00:00Z", "http://hl7.org/fhir/sid/icd-10|J02.9"),
        record("v3", Job.KEEP_WELL, "2026-05-03T09:00:00Z", "urn:local|X1"),
    )
    assert set(got) == {"sct:195662009", "icd10:J02", "general"}
    assert got["icd10:J02"]["concern"] == {  # acute: not chronic
        "id": "icd10:J02",
        "title": "ICD-10 J02",
        "chronic": False,
    }
    reasons = [r["why"] for r in got["general"]["records"]]  # type: ignore[index]
    assert reasons == ["its codes are care without a concern of their own (check-up, screening)"]
