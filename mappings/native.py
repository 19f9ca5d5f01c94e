"""Which mapping code runs: the mypyc-compiled build, or the Python sources.

`scripts/setup` compiles the mapping modules with mypyc (the same code, compiled to
C: about 1.4x faster) into `build/native/`, with a manifest of the hash of every
source file of the package it compiled. The package uses that build only while the
manifest matches the sources exactly: one edited file and everything runs as Python
again (compiled modules call each other directly, so a stale one must never be mixed
with a fresh one) until `scripts/setup` compiles it again. `JOURNEY_PURE_PYTHON=1`
runs the sources whatever is built. Both run the same tests.

A dataclass whose objects leave the package is marked
`@mypyc_attr(native_class=False)`: its methods are compiled, but its objects are plain
Python objects. A native class keeps float, int and bool fields unboxed in its slots,
and orjson, which reads a dataclass's slots directly, crashes the process on them
(tests/mappings/test_native.py checks every such class). Only private, internal classes
are native.

This module is never compiled, and reads no resource: it only decides at import.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import orjson

MANIFEST = "manifest.json"
# Relative to the repository (the folder holding the `mappings` package).
BUILD_FOLDER = Path("build") / "native"
PURE_PYTHON_ENV = "JOURNEY_PURE_PYTHON"
# Not compiled: this loader, the package's __init__ (it runs the loader), the rule
# pack loader (pydantic models, read once at start) and the errors (subclasses of
# fhir_journey's exceptions, which mypyc cannot compile as native classes).
NOT_COMPILED = frozenset({"__init__", "native", "rulepack", "errors"})


@dataclass(frozen=True)
class NativeBuild:
    """What the package runs: `compiled` with the modules compiled, or why not."""

    compiled: bool
    detail: str
    modules: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.compiled:
            return f"compiled with mypyc ({len(self.modules)} modules)"
        return f"Python ({self.detail})"


def source_hashes(package: Path) -> dict[str, str]:
    """sha256 of every Python source of the package, by file name."""
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(package.glob("*.py"))
    }


def interpreter_tag() -> str:
    """The ABI the build is for: a build for another Python cannot be loaded."""
    return f"{sys.implementation.cache_tag}-{sys.platform}"


def check_build(package: Path, build: Path) -> NativeBuild:
    """Whether the build at `build` is used for the sources in `package`."""
    if os.environ.get(PURE_PYTHON_ENV, "").strip() not in ("", "0"):
        return NativeBuild(False, f"{PURE_PYTHON_ENV} is set")
    return read_build(package, build)


def read_build(package: Path, build: Path) -> NativeBuild:
    """Whether the build at `build` matches the sources in `package`, whatever the
    environment asks for (`scripts/build_native.py` asks before compiling again)."""
    manifest_path = build / MANIFEST
    if not manifest_path.is_file():
        return NativeBuild(False, "not compiled: scripts/setup compiles it")
    try:
        manifest = orjson.loads(manifest_path.read_bytes())
        recorded = dict(manifest["sources"])
        modules = tuple(str(m) for m in manifest["modules"])
        tag = str(manifest["interpreter"])
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return NativeBuild(False, f"{manifest_path} is unreadable: scripts/setup compiles again")
    if tag != interpreter_tag():
        return NativeBuild(False, f"compiled for {tag}, running {interpreter_tag()}")
    current = source_hashes(package)
    changed = sorted(
        name for name in recorded.keys() | current.keys() if recorded.get(name) != current.get(name)
    )
    if changed:
        return NativeBuild(
            False, f"{', '.join(changed)} changed since compiled: scripts/setup compiles again"
        )
    missing = [m for m in modules if not any((build / "mappings").glob(f"{m}.*.so"))]
    if missing:
        return NativeBuild(False, f"compiled modules missing: {', '.join(missing)}")
    return NativeBuild(True, "", modules)


def choose(package_path: list[str]) -> tuple[list[str], NativeBuild]:
    """The package's search path, with the compiled build first when it is usable."""
    package = Path(package_path[0])
    build = package.parent / BUILD_FOLDER
    state = check_build(package, build)
    if not state.compiled:
        return package_path, state
    # The build's shared runtime is a top-level module beside the package folder.
    root = str(build)
    if root not in sys.path:
        sys.path.append(root)
    return [str(build / "mappings"), *package_path], state
