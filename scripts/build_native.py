"""Compile the mapping modules with mypyc into build/native/ (see mappings/native.py).

    .venv/bin/python scripts/build_native.py [--force]

Does nothing when the build already matches the sources. Needs a C compiler and the
Python headers; without them it says so and exits 0: mapping then runs as Python,
only slower. Compiles a copy of the package in a scratch folder, so that neither
pyproject.toml nor the source tree is touched, and moves the result into place only
when every module compiled (an interrupted build leaves the previous one, or none).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

from mappings.native import (
    BUILD_FOLDER,
    MANIFEST,
    NOT_COMPILED,
    interpreter_tag,
    read_build,
    source_hashes,
)

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "mappings"
GROUP = "journey_mappings"

SETUP = """
from mypyc.build import mypycify
from setuptools import setup
import sys
modules = sys.argv[1:]
sys.argv[1:] = ["build_ext", "--inplace"]
setup(
    name="fhir-journey-mappings-native",
    ext_modules=mypycify([f"mappings/{m}.py" for m in modules], opt_level="3",
                         group_name="{group}"),
)
"""


def compiled_modules() -> list[str]:
    return sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in NOT_COMPILED)


def build_is_current(build: Path) -> bool:
    """The build matches the sources and compiles the modules compiled today."""
    state = read_build(PACKAGE, build)
    return state.compiled and list(state.modules) == compiled_modules()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--force", action="store_true", help="compile even if current")
    args = parser.parse_args()
    build = ROOT / BUILD_FOLDER
    if not args.force and build_is_current(build):
        return 0
    modules = compiled_modules()
    if importlib.util.find_spec("mypyc") is None:
        print("mypyc is not installed (scripts/setup dev installs it): mapping runs as Python")
        return 0
    print(f"compiling {len(modules)} mapping modules with mypyc (about a minute)", flush=True)
    with tempfile.TemporaryDirectory(prefix="journey-native-") as scratch:
        work = Path(scratch)
        shutil.copytree(PACKAGE, work / "mappings", ignore=shutil.ignore_patterns("__pycache__"))
        # The hashes of what is compiled, not of the sources as they may be by the end.
        hashes = source_hashes(work / "mappings")
        (work / "setup_native.py").write_text(SETUP.replace("{group}", GROUP))
        # mypy resolves `mappings` to the copy; the rest of the project from the venv.
        env = {**os.environ, "PYTHONPATH": str(work), "MYPYPATH": str(work)}
        done = subprocess.run(
            [sys.executable, "setup_native.py", *modules],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            log = build.parent / "native-build.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(done.stdout + done.stderr)
            print(
                f"could not compile the mapping modules (see {log}); mapping runs as Python",
                file=sys.stderr,
            )
            return 0
        staged = work / "staged"
        (staged / "mappings").mkdir(parents=True)
        for library in work.glob(f"{GROUP}__mypyc.*.so"):
            shutil.copy2(library, staged / library.name)
        for module in modules:
            for library in (work / "mappings").glob(f"{module}.*.so"):
                shutil.copy2(library, staged / "mappings" / library.name)
        manifest = {"interpreter": interpreter_tag(), "modules": modules, "sources": hashes}
        (staged / MANIFEST).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
        if build.exists():
            shutil.rmtree(build)
        build.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staged), build)
    print(f"compiled into {build.relative_to(ROOT)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
