"""Errors raised by the integration core.

    IntegrationError
     ├── ConfigError          a setting or the config file is wrong (names file and key)
     ├── StoreError           the database cannot be opened or migrated
     └── NotFoundError        an id asked for does not exist (API: 404 problem)

Bad input data is never an exception here: it is quarantined with its error
and counted in the import summary.
"""


class IntegrationError(Exception):
    """Root of every error the integration core raises."""


class ConfigError(IntegrationError):
    """A setting or the config file is wrong."""


class StoreError(IntegrationError):
    """The store cannot be opened, migrated or written."""


class NotFoundError(IntegrationError):
    """Something asked for by id does not exist."""

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"{kind} {ident} not found")
        self.kind = kind
        self.ident = ident
