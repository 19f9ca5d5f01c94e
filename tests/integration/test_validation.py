"""R4 validation: what is rejected (with the FHIR path, never the value),
and what is kept with a warning."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from integration.ingest.errors import ResourceRejected
from integration.ingest.validation import check_identity, check_structure, validate_resource
from integration.limits import MAX_DEPTH_CEILING
from integration.store.raw import version_key
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


def nested(levels: int) -> dict[str, Any]:
    """A Patient whose extensions nest until the deepest object is at `levels`."""
    extension: dict[str, Any] = {"url": "http://example.org/leaf", "valueString": "x"}
    for _ in range((levels - 3) // 2):
        extension = {"url": "http://example.org/node", "extension": [extension]}
    return {"resourceType": "Patient", "extension": [extension]}


def test_nesting_is_bounded_without_recursion_and_the_place_is_named() -> None:
    check_structure(nested(63), max_depth=64)
    with pytest.raises(ResourceRejected) as too_deep:
        check_structure(nested(65), max_depth=64)
    assert "64 levels" in too_deep.value.message
    assert too_deep.value.fhir_path.startswith("Patient.extension[0].extension[0]")
    assert "more)" in too_deep.value.fhir_path  # a long path is shortened, not printed whole
    # Far past the interpreter's recursion limit: a loop, not a RecursionError.
    with pytest.raises(ResourceRejected):
        check_structure(nested(50_001))
    # Validation checks it first, in trusted mode too.
    with pytest.raises(ResourceRejected, match="JOURNEY_MAX_RESOURCE_DEPTH"):
        validate_resource(nested(301))
    with pytest.raises(ResourceRejected, match="JOURNEY_MAX_RESOURCE_DEPTH"):
        check_identity(nested(301))


def test_a_nul_character_is_named_by_its_path_never_shown() -> None:
    with pytest.raises(ResourceRejected) as in_value:
        check_structure({"resourceType": "Patient", "name": [{"given": ["a", "b\x00"]}]})
    assert in_value.value.fhir_path == "Patient.name[0].given[1]"
    with pytest.raises(ResourceRejected) as in_name:
        check_structure({"resourceType": "Patient", "name": [{"giv\x00en": ["a"]}]})
    assert in_name.value.fhir_path == "Patient.name[0]"
    assert "\x00" not in in_value.value.message + in_name.value.message


def test_the_depth_setting_stays_below_what_validation_and_hashing_can_take() -> None:
    from integration.config import Settings

    with pytest.raises(ValidationError):
        Settings(max_resource_depth=MAX_DEPTH_CEILING + 1)
    deepest = nested(MAX_DEPTH_CEILING - 1)
    validate_resource(deepest, max_depth=MAX_DEPTH_CEILING)
    assert version_key(deepest).startswith("h:")


def test_the_json_a_resource_came_from_spares_the_walk_but_not_the_checks() -> None:
    deep = nested(65)
    with pytest.raises(ResourceRejected, match="64 levels"):
        check_structure(deep, 64, raw=orjson.dumps(deep))
    with_nul = patient("p", name=[{"family": "a\x00"}])
    with pytest.raises(ResourceRejected, match="NUL"):
        check_structure(with_nul, raw=orjson.dumps(with_nul))
    # A backslash before "u0000" is text, not a NUL: looked at closely, and accepted.
    backslash = patient("p", name=[{"family": "a\\u0000"}])
    check_structure(backslash, raw=orjson.dumps(backslash))
