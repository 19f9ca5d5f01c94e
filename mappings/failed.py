"""What a resource whose mapping failed becomes: an explained `unclassified` record.

A rule pack, a date at the calendar's edge or a shape nobody foresaw can make
mapping raise. One resource must never stop the journey of everyone else, so
the caller catches the error and places the resource with this record instead:
it stays in its patient's journey, says that mapping failed and how (the
error's kind and where in the code, never a value from the resource), and is
mapped again by `journey remap` once the cause is fixed.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mappings.fhir_values import reference_id
from mappings.model import Job, JobRecord, SourceRef
from mappings.rulepack import RulePack

FAILED_RULE = "mapping-failed"


def describe_failure(error: BaseException) -> str:
    """The error's type and the line of code it came from: no message, which can quote
    the resource it was about."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return type(error).__name__
    last = frames[-1]
    return f"{type(error).__name__} at {Path(last.filename).name}:{last.lineno}"


def failed_record(
    resource: Mapping[str, Any], ref: SourceRef, pack: RulePack, failure: str
) -> JobRecord:
    try:
        subject = reference_id(resource.get("subject"), "Patient")
    except Exception:  # the subject is what places the record; without one it is an orphan
        subject = None
    return JobRecord(
        job=Job.UNCLASSIFIED,
        source_ref=ref,
        subject_id=subject,
        occurred_start=None,
        occurred_end=None,
        title=f"{ref.resource_type} that could not be mapped",
        setting=None,
        concern_codes=(),
        rule_id=FAILED_RULE,
        pack_version=pack.label,
        reason=(
            f"Mapping failed ({failure}); the resource is kept as received and is mapped "
            "again by `journey remap` once the cause is fixed (see `journey quarantine`)"
        ),
        warnings=(f"mapping failed: {failure}",),
    )
