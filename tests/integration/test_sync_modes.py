"""The mode -> runner registry is the one place a connector is added."""

from __future__ import annotations

from typing import get_args

from integration.sources import SourceConfig
from integration.sync.runners import MODES


def source(mode: str, **extra: object) -> SourceConfig:
    return SourceConfig.model_validate(
        {"name": "s", "kind": "payer", "base_url": "https://x.example/fhir", "mode": mode, **extra}
    )


def test_every_mode_a_source_may_name_has_a_runner_and_no_runner_is_unreachable() -> None:
    assert set(MODES) == set(get_args(SourceConfig.model_fields["mode"].annotation))


def test_a_rest_source_is_leased_per_resource_type_and_a_bulk_source_per_export() -> None:
    rest = source("rest", resource_types=["Patient", "Encounter"])
    assert MODES["rest"].units(rest) == ("Patient", "Encounter")
    assert MODES["rest"].narrow(rest, "Encounter").resource_types == ("Encounter",)
    bulk = source("bulk", resource_types=["Patient", "Encounter"])
    assert MODES["bulk"].units(bulk) == ("$export",)
    assert MODES["bulk"].narrow(bulk, "$export") == bulk
