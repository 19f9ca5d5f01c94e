"""Job records read back from the store are the records that were written."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from integration.store.job_records import records_of, replace_job_records
from mappings.model import Flag, Job, JobRecord, ScaleScore, SourceRef


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_record_reads_back_whole(engine: Engine) -> None:
    record = JobRecord(
        job=Job.DIAGNOSE,
        source_ref=SourceRef("clinic", "QuestionnaireResponse", "q1", "h:1"),
        subject_id="p1",
        occurred_start="2025-03-01T10:00:00Z",
        occurred_end="2025-03-01T10:00:01Z",
        title="PHQ-9 screening",
        setting="questionnaire",
        concern_codes=("http://snomed.info/sct|35489007",),
        rule_id="questionnaire.screen.safety-item",
        pack_version="default 1",
        reason="why",
        matched_codes=("a|b",),
        instrument="phq9",
        score=3,
        fulfilment_score=4,
        warnings=("w",),
        flags=(Flag.SELF_HARM_RISK,),
        excluded=False,
        band="minimal",
        instrument_version="PHQ-9 (LOINC 44249-1)",
        scores=(ScaleScore("total", 3.0, "minimal"),),
    )
    with engine.begin() as conn:
        replace_job_records(conn, [("clinic", "QuestionnaireResponse", "q1")], [record], "now")
        read = records_of(conn, "clinic", "QuestionnaireResponse", {"q1"})
    assert read == {"q1": record}
