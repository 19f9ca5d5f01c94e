"""Errors raised by the mapping engine.

    JourneyError           fhir_journey/errors.py: the project's root
     └── MappingError
          ├── RulePackError      a rule pack file is missing, malformed or inconsistent
          └── FhirDateError      a string that is no FHIR date, dateTime or instant (names
                                 the path, never the value); also a ValueError

Resources that no rule places are not errors: they become `unclassified`
job records that say why.
"""

from fhir_journey.errors import JourneyError


class MappingError(JourneyError):
    """Root of every error the mapping engine raises."""


class RulePackError(MappingError):
    """A rule pack cannot be loaded; says which file and which key."""

    def __init__(self, file: str, key: str, reason: str) -> None:
        super().__init__(f"{file}: {key}: {reason}")
        self.file = file
        self.key = key
        self.reason = reason


class FhirDateError(MappingError, ValueError):
    """A string that is no FHIR date, dateTime or instant at all."""
