"""Secrets named in the config file (an environment variable or a file), read when needed."""

from __future__ import annotations

import os
from pathlib import Path

from integration.errors import ConfigError


def read_secret(where: str, what: str, env: str | None, file: str | None) -> str:
    """The secret from `env` or `file`; a ConfigError names `where`, the key and the problem."""
    if env:
        value = os.environ.get(env)
        if not value or not value.strip():
            raise ConfigError(f"{where}.{what}_env: environment variable {env} is not set")
        return value.strip()
    if file:
        path = Path(file)
        if not path.is_file():
            raise ConfigError(f"{where}.{what}_file: no file {path}")
        return path.read_text(encoding="utf-8").strip()
    raise ConfigError(f"{where}: {what}_env or {what}_file is required")
