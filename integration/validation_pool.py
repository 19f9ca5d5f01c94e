"""FHIR validation in worker processes, so a large import uses every core.

Validation (fhir.resources / pydantic) is the CPU-heavy part of an import and
holds the GIL, so threads would not help: batches go to a process pool as
JSON bytes and come back as small verdicts. The caller keeps batches in
order (it waits for batch k before storing it, while k+1 and k+2 are being
validated), so the store sees exactly the order a single process would.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor

import orjson

from integration.validation import ResourceRejected, Validated, validate_resource

Verdict = Validated | ResourceRejected
# What crosses the process boundary: ("ok", type, *warnings) or ("rejected", path, message).
_Wire = tuple[str, ...]


def default_processes() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _validate_batch(payloads: list[bytes]) -> list[_Wire]:
    verdicts: list[_Wire] = []
    for payload in payloads:
        try:
            validated = validate_resource(orjson.loads(payload))
        except ResourceRejected as rejected:
            verdicts.append(("rejected", rejected.fhir_path, rejected.message))
            continue
        verdicts.append(("ok", validated.resource_type, *validated.warnings))
    return verdicts


def _from_wire(wire: _Wire) -> Verdict:
    if wire[0] == "ok":
        return Validated(wire[1], tuple(wire[2:]))
    return ResourceRejected(wire[1], wire[2])


class ValidationPool:
    """A pool of validating processes; `submit` a batch, `verdicts` it later, in order."""

    def __init__(self, processes: int) -> None:
        # spawn, not fork: the parent may have threads (the event loop's workers).
        self._executor = ProcessPoolExecutor(
            processes, mp_context=multiprocessing.get_context("spawn")
        )

    def submit(self, payloads: list[bytes]) -> Future[list[_Wire]]:
        """JSON bytes of each resource: a line as read, when there is one."""
        return self._executor.submit(_validate_batch, payloads)

    @staticmethod
    def verdicts(future: Future[list[_Wire]]) -> list[Verdict]:
        return [_from_wire(wire) for wire in future.result()]

    def close(self) -> None:
        self._executor.shutdown(cancel_futures=True)
