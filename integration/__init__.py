"""The core that ties connectors and mappings together: settings, store,
identity, the import pipeline, the API and the CLI."""
