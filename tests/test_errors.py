"""One error root: every error the project defines derives from `JourneyError`, and the
CLI turns any of them into one line on stderr and exit code 1."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

from connectors.errors import ConnectorError, ExportTimedOut, InputPathError, StreamFailed
from fhir_journey.errors import JourneyError
from integration.api.problems import ApiProblem
from integration.cli import commands
from integration.errors import IntegrationError
from integration.ingest.errors import ResourceRejected
from integration.push.errors import FhirError
from integration.store.leases import LeaseLost
from mappings.errors import FhirDateError, MappingError

PACKAGES = ("fhir_journey", "connectors", "mappings", "integration")
# Alembic runs these scripts itself, inside a migration context; they define no errors.
NOT_IMPORTABLE = ("integration.store.migrations.",)


def _modules() -> list[ModuleType]:
    modules = []
    for name in PACKAGES:
        package = importlib.import_module(name)
        modules.append(package)
        for info in pkgutil.walk_packages(package.__path__, f"{name}."):
            if not info.name.startswith(NOT_IMPORTABLE):
                modules.append(importlib.import_module(info.name))
    return modules


def _defined_exceptions() -> dict[str, type[BaseException]]:
    return {
        f"{module.__name__}.{name}": value
        for module in _modules()
        for name, value in vars(module).items()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == module.__name__
    }


def test_every_exception_the_project_defines_derives_from_the_root() -> None:
    defined = _defined_exceptions()
    outside = sorted(name for name, cls in defined.items() if not issubclass(cls, JourneyError))
    assert outside == [], "derive these from JourneyError (through their package's root)"
    # The walk reached every package, down to the modules that define errors in place.
    assert {
        "fhir_journey.errors.JourneyError",
        "connectors.errors.StreamFailed",
        "mappings.errors.FhirDateError",
        "integration.store.leases.LeaseLost",
        "integration.api.problems.ApiProblem",
    } <= defined.keys()


def test_each_package_has_its_own_branch() -> None:
    for root in (ConnectorError, MappingError, IntegrationError):
        assert root.__bases__ == (JourneyError,)
    assert issubclass(StreamFailed, ConnectorError)
    assert issubclass(FhirDateError, MappingError)
    assert issubclass(FhirDateError, ValueError)  # a bad value, as datetime's own parsers say
    for cls in (ResourceRejected, FhirError, LeaseLost, ApiProblem):
        assert issubclass(cls, IntegrationError)


@pytest.mark.parametrize(
    "error",
    [
        InputPathError("/data/in.ndjson", "no such file or folder"),
        StreamFailed("https://fhir.example/export/1/Patient.ndjson: HTTP 503: unavailable"),
        ExportTimedOut("https://fhir.example/status/7", 600, "[stage 2/3] 40%"),
        FhirDateError("Encounter.period.start: not a FHIR date or dateTime"),
        ResourceRejected("Patient.identifier[0].system", "not a valid URI"),
        LeaseLost("ehr", "Patient"),
        FhirError(404, "not-found", "Patient/p1 is not known"),
        ApiProblem(404, "Not Found", "no quarantine entry 7"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_cli_prints_any_error_below_the_root_as_one_line_and_exits_1(
    error: JourneyError, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def app() -> None:
        raise error

    monkeypatch.setattr(commands, "app", app)
    with pytest.raises(SystemExit) as exited:
        commands.main()
    assert exited.value.code == 1
    captured = capsys.readouterr()
    # As written, brackets and all, on one line however long; nothing on stdout.
    assert captured.err == f"error: {error}\n"
    assert captured.out == ""


def test_cli_leaves_other_errors_to_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def app() -> None:
        raise KeyError("a bug, not an error the project raises on purpose")

    monkeypatch.setattr(commands, "app", app)
    with pytest.raises(KeyError):
        commands.main()
