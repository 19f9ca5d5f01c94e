"""Resource intake in worker processes, so a large import uses every core.

Validation (fhir.resources / pydantic) is the CPU-heavy part of an import and
holds the GIL, so threads would not help: batches go to a process pool as
JSON bytes, each worker parses and takes them in (`intake`), and only small tuples
come back. The pipeline's own process is left with reading and the store,
the one part that cannot be spread (one SQLite writer). The caller keeps
batches in order (it waits for batch k before storing it, while k+1 and
k+2 are being taken), so the store sees exactly the order a single
process would.

Workers exit when the pipeline's process dies, even by kill -9 (`worker_process.py`).
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeGuard

import orjson

from integration.ingest.errors import ResourceRejected
from integration.ingest.intake import Intake, intake
from integration.worker_process import start_worker

IntakeResult = Intake | ResourceRejected
# One resource to take in: its JSON bytes and the id its place implies, if any.
Payload = tuple[bytes, str | None]
# What comes back: an Intake's fields, or ("rejected", path, message).
_Wire = tuple[str | tuple[str, ...] | None, ...]


def _intake_batch(payloads: list[Payload], validate: bool, max_depth: int) -> list[_Wire | None]:
    wires: list[_Wire | None] = []
    for body, fallback_id in payloads:
        try:
            resource = orjson.loads(body)
        except orjson.JSONDecodeError:
            resource = None
        if not _one_plain_resource(resource):
            # Malformed, a Bundle, not a resource at all: the pipeline's reader says
            # what it is, in the pipeline's process (rare, and it keeps one reader).
            wires.append(None)
            continue
        try:
            taken = intake(resource, fallback_id, validate, max_depth, body)
        except ResourceRejected as rejected:
            wires.append(("rejected", rejected.fhir_path, rejected.message))
            continue
        wires.append(
            (
                taken.resource_type,
                taken.resource_id,
                taken.version_key,
                taken.last_updated,
                taken.subject_id,
                taken.warnings,
            )
        )
    return wires


def _one_plain_resource(value: Any) -> TypeGuard[dict[str, Any]]:
    return isinstance(value, dict) and "resourceType" in value and value["resourceType"] != "Bundle"


def _from_wire(wire: _Wire | None) -> IntakeResult | None:
    if wire is None:
        return None
    if wire[0] == "rejected":
        return ResourceRejected(str(wire[1]), str(wire[2]))
    return Intake(*wire)  # type: ignore[arg-type]


class IntakePool:
    """A pool of intake processes; `submit` a batch, `results` it later, in order."""

    def __init__(self, processes: int, validate: bool, max_depth: int) -> None:
        # spawn, not fork: the parent may have threads (the event loop's workers).
        self._executor = ProcessPoolExecutor(
            processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=start_worker,
            initargs=(os.getpid(),),
        )
        self._validate = validate
        self._max_depth = max_depth

    def submit(self, payloads: list[Payload]) -> Future[list[_Wire | None]]:
        return self._executor.submit(_intake_batch, payloads, self._validate, self._max_depth)

    @staticmethod
    def results(future: Future[list[_Wire | None]]) -> list[IntakeResult | None]:
        """In submission order; None for a line to be parsed by the pipeline itself."""
        return [_from_wire(wire) for wire in future.result()]

    def close(self) -> None:
        self._executor.shutdown(cancel_futures=True)
