"""R4 validation: what is rejected (with the FHIR path, never the value),
and what is kept with a warning."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from integration.validation import ResourceRejected, validate_resource
from tests.conftest import FIXTURES, encounter, patient


def rejection(resource: dict[str, Any]) -> ResourceRejected:
    with pytest.raises(ResourceRejected) as caught:
        validate_resource(resource)
    return caught.value


def test_invalid_birth_date_names_the_path_not_the_value() -> None:
    error = rejection(patient("p", birthDate="1970-13-01"))
    assert error.fhir_path == "Patient.birthDate"
    assert "1970-13-01" not in str(error)


def test_unknown_and_missing_resource_types() -> None:
    assert "unknown resourceType 'Spaceship'" in rejection({"resourceType": "Spaceship"}).message
    assert rejection({"id": "x"}).message == "missing resourceType"
    assert rejection({"resourceType": 42}).fhir_path == "resourceType"


def test_element_not_in_r4_is_named() -> None:
    error = rejection(patient("p", favouriteColour="blue"))
    assert error.fhir_path == "Patient.favouriteColour"
    assert error.message == "element not defined in FHIR R4"


def test_nested_error_path_uses_fhir_indexes() -> None:
    error = rejection(
        patient("p", identifier=[{"system": "urn:x", "value": "1"}, {"period": {"start": "nope"}}])
    )
    assert error.fhir_path == "Patient.identifier[1].period.start"


def test_r5_shaped_encounter_is_rejected_saying_so() -> None:
    error = rejection(orjson.loads((FIXTURES / "encounter-r5-shape.json").read_bytes()))
    assert error.fhir_path == "Encounter.class"
    assert "R5 Encounter" in error.message
    assert "actualPeriod" in error.message


def test_naive_date_time_is_accepted_with_a_warning() -> None:
    result = validate_resource(encounter("e", "p", start="2025-01-28T00:00:00"))
    assert result.warnings == ("Encounter.period.start: dateTime without timezone, read as UTC",)


def test_naive_date_time_next_to_a_real_error_is_still_rejected() -> None:
    bad = encounter("e", "p", start="2025-01-28T00:00:00", status="teleported")
    assert rejection(bad).fhir_path == "Encounter.status"


def test_partial_dates_are_valid_fhir() -> None:
    assert validate_resource(encounter("e", "p", start="2025-01")).warnings == ()


def test_bad_id_is_rejected() -> None:
    assert rejection(patient("no spaces allowed")).fhir_path == "Patient.id"
