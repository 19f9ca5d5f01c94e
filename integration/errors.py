"""Errors raised by the integration core.

    IntegrationError
     ├── ConfigError          a setting or the config file is wrong (names file and key)
     └── StoreError           the database cannot be opened or migrated

Bad input data is never an exception here: it is quarantined with its error
and counted in the import summary.
"""


class IntegrationError(Exception):
    """Root of every error the integration core raises."""


class ConfigError(IntegrationError):
    """A setting or the config file is wrong."""


class StoreError(IntegrationError):
    """The store cannot be opened, migrated or written."""
