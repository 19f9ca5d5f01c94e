"""Errors raised by the integration core.

    JourneyError                  fhir_journey/errors.py: the project's root
     └── IntegrationError
          ├── ConfigError              a setting or the config file is wrong (names file and key)
          ├── StoreError               the database cannot be opened, migrated or written
          ├── QuarantineEntryNotFound  store/quarantine.py: no entry with that id (a LookupError)
          ├── LeaseLost                store/leases.py: another worker took a sync unit over
          ├── ResourceRejected         ingest/errors.py: not valid FHIR R4 (names the FHIR path)
          ├── FhirError                push/errors.py: a FHIR interaction answered with an
          │                            OperationOutcome
          └── ApiProblem               api/problems.py: an API answer as problem details

Bad input data never stops an import: a `ResourceRejected` is caught where it
is raised, and the resource quarantined with its error and counted in the
import summary.
"""

from fhir_journey.errors import JourneyError


class IntegrationError(JourneyError):
    """Root of every error the integration core raises."""


class ConfigError(IntegrationError):
    """A setting or the config file is wrong."""


class StoreError(IntegrationError):
    """The store cannot be opened, migrated or written."""
