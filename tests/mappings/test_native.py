"""The compiled mapping build is used only while it matches the sources exactly."""

from __future__ import annotations

import ast
from pathlib import Path

import orjson
import pytest

import mappings
import mappings.encounter
from mappings.model import Flag, Job, JobRecord, ScaleScore, SourceRef
from mappings.native import (
    MANIFEST,
    NOT_COMPILED,
    PURE_PYTHON_ENV,
    check_build,
    interpreter_tag,
    source_hashes,
)


@pytest.fixture
def package(tmp_path: Path) -> Path:
    folder = tmp_path / "mappings"
    folder.mkdir()
    (folder / "__init__.py").write_text('"""The package."""\n')
    (folder / "encounter.py").write_text("def place() -> int:\n    return 1\n")
    return folder


def build_for(package: Path, modules: tuple[str, ...] = ("encounter",)) -> Path:
    build = package.parent / "build" / "native"
    (build / "mappings").mkdir(parents=True)
    for module in modules:
        (build / "mappings" / f"{module}.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    manifest = {
        "interpreter": interpreter_tag(),
        "modules": list(modules),
        "sources": source_hashes(package),
    }
    (build / MANIFEST).write_bytes(orjson.dumps(manifest))
    return build


@pytest.fixture(autouse=True)
def _compiled_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PURE_PYTHON_ENV, raising=False)


def test_a_build_matching_every_source_is_used(package: Path) -> None:
    state = check_build(package, build_for(package))
    assert state.compiled
    assert state.modules == ("encounter",)
    assert state.describe() == "compiled with mypyc (1 modules)"


def test_one_edited_source_runs_everything_as_python_and_names_the_file(package: Path) -> None:
    build = build_for(package)
    (package / "encounter.py").write_text("def place() -> int:\n    return 2\n")
    state = check_build(package, build)
    assert not state.compiled
    assert "encounter.py changed since compiled" in state.detail


def test_a_source_added_or_removed_since_the_build_counts_as_a_change(package: Path) -> None:
    build = build_for(package)
    (package / "claims.py").write_text("")
    assert "claims.py changed" in check_build(package, build).detail
    (package / "claims.py").unlink()
    (package / "encounter.py").unlink()
    assert "encounter.py changed" in check_build(package, build).detail


def test_no_build_runs_python(package: Path) -> None:
    state = check_build(package, package.parent / "build" / "native")
    assert not state.compiled
    assert state.describe() == "Python (not compiled: scripts/setup compiles it)"


def test_the_environment_switch_runs_python_over_a_good_build(
    package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build = build_for(package)
    monkeypatch.setenv(PURE_PYTHON_ENV, "1")
    assert check_build(package, build).detail == f"{PURE_PYTHON_ENV} is set"
    monkeypatch.setenv(PURE_PYTHON_ENV, "0")
    assert check_build(package, build).compiled


def test_a_build_for_another_python_is_not_loaded(package: Path) -> None:
    build = build_for(package)
    manifest = orjson.loads((build / MANIFEST).read_bytes())
    manifest["interpreter"] = "cpython-310-linux"
    (build / MANIFEST).write_bytes(orjson.dumps(manifest))
    state = check_build(package, build)
    assert not state.compiled
    assert "compiled for cpython-310-linux" in state.detail


@pytest.mark.parametrize("content", [b"{not json", b"[]", b'{"sources": {}}'])
def test_an_unreadable_manifest_runs_python(package: Path, content: bytes) -> None:
    build = build_for(package)
    (build / MANIFEST).write_bytes(content)
    state = check_build(package, build)
    assert not state.compiled
    assert "unreadable" in state.detail


def test_a_listed_module_missing_from_the_build_runs_python(package: Path) -> None:
    build = build_for(package)
    next((build / "mappings").glob("encounter.*.so")).unlink()
    assert check_build(package, build).detail == "compiled modules missing: encounter"


def test_the_mapping_code_running_is_what_the_build_check_decided() -> None:
    loaded = Path(mappings.encounter.__file__ or "")
    if mappings.NATIVE_BUILD.compiled:
        assert loaded.suffix == ".so"
        assert "encounter" in mappings.NATIVE_BUILD.modules
    else:
        assert loaded.suffix == ".py"


# Private classes of one module, never handed out of the package.
NATIVE_ALLOWED = {"Decision"}


def test_every_dataclass_handed_out_of_the_package_is_a_plain_class_when_compiled() -> None:
    package = Path(mappings.__file__ or "").parent
    native = []
    for path in package.glob("*.py"):
        if path.stem in NOT_COMPILED:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ClassDef) or node.name.startswith("_"):
                continue
            decorators = [ast.unparse(d) for d in node.decorator_list]
            if any(d.startswith("dataclass") for d in decorators) and (
                "mypyc_attr(native_class=False)" not in decorators
                and node.name not in NATIVE_ALLOWED
            ):
                native.append(f"{path.name}: {node.name}")
    assert native == []


def test_a_job_record_with_every_kind_of_field_serialises_with_orjson() -> None:
    # A native class's unboxed float and bool fields crashed orjson (a segfault).
    record = JobRecord(
        Job.DIAGNOSE,
        SourceRef("clinic", "QuestionnaireResponse", "q1", "2"),
        "p1",
        "2026-01-02T03:04:05Z",
        None,
        "PHQ-9",
        None,
        (),
        "questionnaire.phq9",
        "default@1",
        "why",
        score=12,
        flags=(Flag.SELF_HARM_RISK,),
        excluded=True,
        scores=(ScaleScore("total", 12.0, "moderate"),),
    )
    row = orjson.loads(orjson.dumps(record))
    assert row["scores"] == [{"scale": "total", "value": 12.0, "band": "moderate"}]
    assert row["excluded"] is True
    assert row["source_ref"]["resource_id"] == "q1"
