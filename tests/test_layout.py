"""The tree shows the flow: dependencies point one way and no name means two things.

Read from the source (not by importing), so lazy imports inside functions count too.
"""

from __future__ import annotations

import ast
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("fhir_journey", "connectors", "mappings", "integration")
# integration's stage packages, in the order they may depend on each other: each
# may import those before it, never one after it.
STAGES = ("store", "journey", "ingest", "push", "sync", "api", "cli")
# Stages whose statements are the store's: they hand it a connection or an engine and
# catch its errors, and build no SQL of their own (no tables, no select/insert/text).
NO_SQL_STAGES = ("journey", "cli")
# What those may take from SQLAlchemy, by module (None: any name).
SQLALCHEMY_ALLOWED: dict[str, set[str] | None] = {
    "sqlalchemy": {"Connection", "Engine", "exc"},
    "sqlalchemy.exc": None,
}
# The store's modules that statements are built from (tables, key conditions, upserts).
STATEMENT_BUILDERS = (
    "integration.store.schema",
    "integration.store.keys",
    "integration.store.upsert",
)


def _modules() -> dict[str, ast.Module]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = ast.parse(path.read_text(), str(path))
    return found


MODULES = _modules()


def _imports(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name.split(".")[0] in PACKAGES}


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "integration" and len(parts) > 2 else None


def test_connectors_and_mappings_import_neither_integration_nor_each_other() -> None:
    wrong = [
        f"{module} imports {imported}"
        for module, tree in MODULES.items()
        for imported in _imports(tree)
        if module.split(".")[0] in ("connectors", "mappings")
        and imported.split(".")[0] not in (module.split(".")[0], "fhir_journey")
    ]
    assert wrong == []


def test_integration_stages_depend_one_way() -> None:
    wrong = []
    for module, tree in MODULES.items():
        stage = _stage(module)
        if stage not in STAGES:
            continue
        for imported in _imports(tree):
            other = _stage(imported)
            if other in STAGES and STAGES.index(other) > STAGES.index(stage):
                wrong.append(f"{module} ({stage}) imports {imported} ({other})")
    assert wrong == []


def _sql_imports(tree: ast.Module) -> list[str]:
    """A module's imports of the store's statement builders, and of SQLAlchemy beyond
    what `SQLALCHEMY_ALLOWED` lets it have."""
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported = [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            imported = [(alias.name, None) for alias in node.names]
        else:
            continue
        for module, name in imported:
            full = f"{module}.{name}" if name else module
            if module in STATEMENT_BUILDERS or full in STATEMENT_BUILDERS:
                found.append(full)
            elif module.split(".")[0] == "sqlalchemy":
                allowed = SQLALCHEMY_ALLOWED.get(module, set())
                if allowed is not None and name not in allowed:
                    found.append(full)
    return found


def test_journey_and_cli_build_no_sql() -> None:
    wrong = [
        f"{module} imports {imported}"
        for module, tree in MODULES.items()
        if _stage(module) in NO_SQL_STAGES
        for imported in _sql_imports(tree)
    ]
    assert wrong == []


def test_the_shared_top_level_modules_import_no_stage() -> None:
    # config, sources, clock, errors, the registries: every stage reads them.
    wrong = [
        f"{module} imports {imported}"
        for module, tree in MODULES.items()
        if module.startswith("integration.") and _stage(module) is None
        for imported in _imports(tree)
        if _stage(imported) in STAGES
    ]
    assert wrong == []


def test_no_class_name_is_defined_twice() -> None:
    where: dict[str, list[str]] = defaultdict(list)
    for module, tree in MODULES.items():
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                where[node.name].append(module)
    twice = {name: modules for name, modules in where.items() if len(modules) > 1}
    assert twice == {}, twice
    assert Counter(len(modules) for modules in where.values()).keys() == {1}


def test_every_setting_has_its_readme_row() -> None:
    """Each field of the settings object is documented as its JOURNEY_ variable (the
    config file's tables have sections of their own)."""
    from integration.config import TABLES, Settings

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    tables = {*TABLES, "config_file"}
    missing = [
        name
        for name in Settings.model_fields
        if name not in tables and f"`JOURNEY_{name.upper()}`" not in readme
    ]
    assert missing == []
