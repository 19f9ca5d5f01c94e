"""The compiled mapping build makes exactly the records the Python sources make."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import mappings

BENCH = Path(__file__).resolve().parents[2] / "bench" / "import_bench.py"


def records_made(out: Path, python: bool) -> list[bytes]:
    env = {**os.environ, "JOURNEY_PURE_PYTHON": "1" if python else "0"}
    subprocess.run(
        [sys.executable, str(BENCH), "--resources", "12000", "--dump-records", str(out)],
        env=env,
        check=True,
        capture_output=True,
    )
    return out.read_bytes().splitlines()


def test_the_compiled_build_maps_the_bench_population_as_the_python_sources_do(
    tmp_path: Path,
) -> None:
    if not mappings.NATIVE_BUILD.compiled:
        pytest.skip(f"mapping code is not compiled here: {mappings.NATIVE_BUILD.detail}")
    compiled = records_made(tmp_path / "compiled.ndjson", python=False)
    python = records_made(tmp_path / "python.ndjson", python=True)
    # Encounters, responses and total Observations: every rule path the population takes.
    assert len(compiled) > 10_000
    assert b'"self_harm_risk"' in b"".join(python)
    assert compiled == python
