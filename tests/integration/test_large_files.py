"""Memory does not grow with file size: a 200 MB file and a large streamed Bundle,
each imported in a fresh process that reports its own peak RSS."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.conftest import patient

# The child's own peak (VmHWM): getrusage's ru_maxrss survives exec on Linux, so a
# child would report pytest's peak as its own and every comparison would pass.
MEASURE = """
import sys
from pathlib import Path
from integration.ingest.pipeline import IngestPipeline
from integration.store.engine import open_store
from mappings.rulepack import load_rule_pack
engine = open_store(sys.argv[2])
summary = IngestPipeline(engine, load_rule_pack(), "big", int(sys.argv[3])).run([sys.argv[1]])
status = Path("/proc/self/status").read_text().splitlines()
peak_mb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) // 1024
print(peak_mb, summary.total("new"), summary.total("quarantined"))
for problem in summary.problems:
    print(problem)
"""


def peak_mb(path: Path, tmp_path: Path, limit: int) -> tuple[int, int, int, str]:
    db = f"sqlite:///{tmp_path / (path.name + '.db')}"
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path), db, str(limit)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    first, *rest = result.stdout.splitlines()
    rss, new, quarantined = (int(v) for v in first.split())
    return rss, new, quarantined, "\n".join(rest)


@pytest.mark.slow
def test_a_200_mb_ndjson_file_is_read_in_bounded_memory(tmp_path: Path) -> None:
    small = tmp_path / "small.ndjson"
    small.write_bytes(orjson.dumps(patient("a")) + b"\n" + orjson.dumps(patient("c")) + b"\n")
    big = tmp_path / "big.ndjson"
    with big.open("wb") as handle:
        handle.write(orjson.dumps(patient("a")) + b"\n")
        handle.write(b'{"resourceType": "Patient", "id": "huge", "text": "')
        chunk = b"x" * (1 << 20)
        for _ in range(200):
            handle.write(chunk)
        handle.write(b'"}\n')
        handle.write(orjson.dumps(patient("c")) + b"\n")
    assert big.stat().st_size > 200 * 1024 * 1024
    baseline, *_ = peak_mb(small, tmp_path, 16 << 20)
    rss, new, quarantined, problems = peak_mb(big, tmp_path, 16 << 20)
    assert (new, quarantined) == (2, 1)
    assert "line 2: rejected: line is 209715" in problems
    assert rss - baseline < 32, f"peak RSS grew {rss - baseline} MB over a tiny file"


@pytest.mark.slow
def test_a_large_bundle_is_streamed_in_bounded_memory(tmp_path: Path) -> None:
    def bundle(path: Path, count: int) -> Path:
        padding = "y" * 20_000
        entries = [{"resource": patient(f"p{i}", name=[{"text": padding}])} for i in range(count)]
        path.write_bytes(
            orjson.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries})
        )
        return path

    # Memory holds one batch of entries (500 here, ~20 kB each): compare two files that
    # both fill several batches, so what is measured is growth with the file's size.
    medium = bundle(tmp_path / "medium.json", 1000)  # ~20 MB, over the 1 MB limit: streamed
    large = bundle(tmp_path / "large.json", 4000)  # ~80 MB
    assert large.stat().st_size > 80_000_000
    baseline, *_ = peak_mb(medium, tmp_path, 1 << 20)
    rss, new, quarantined, _ = peak_mb(large, tmp_path, 1 << 20)
    assert (new, quarantined) == (4000, 0)
    assert rss - baseline < 16, f"peak RSS grew {rss - baseline} MB with a 4x larger bundle"
