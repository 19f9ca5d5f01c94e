"""The one root of every error fhir-journey raises on purpose.

    JourneyError
     ├── ConnectorError       connectors/errors.py: files, FHIR REST and Bulk Data pulls
     ├── MappingError         mappings/errors.py: rule packs, FHIR dates
     └── IntegrationError     integration/errors.py: settings, store, ingest, push, sync, API

`except JourneyError` catches them all; anything else is a bug or comes from a
library. Messages name sources, files, FHIR paths, ids and statuses, never
resource content, so a caller may print them.
"""


class JourneyError(Exception):
    """Root of every error fhir-journey raises on purpose."""
