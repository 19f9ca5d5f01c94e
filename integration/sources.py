"""Configured FHIR sources: `[[sources]]` tables in the config file, checked at load.

A minimal source is name, kind, base_url and mode. Secrets never sit in the
file: a bearer token is read from the environment variable or the file the
source names. Errors name the file, the source and the key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from connectors.rest.http import HttpPolicy
from integration.config import Settings
from integration.errors import ConfigError

DEFAULT_TYPES = ("Patient", "Encounter", "QuestionnaireResponse")


class AuthConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["none", "bearer"] = "none"
    token_env: str | None = Field(
        default=None, description="environment variable holding the token"
    )
    token_file: str | None = Field(default=None, description="file holding the token")


class SourceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    kind: Literal["provider", "payer"]
    base_url: str
    mode: Literal["rest"]
    auth: AuthConfig = AuthConfig()
    resource_types: tuple[str, ...] = DEFAULT_TYPES
    page_size: int = Field(default=100, ge=1, le=1000)
    concurrency: int = Field(default=4, ge=1, le=32)
    rate_limit: float | None = Field(default=None, gt=0, description="requests per second")
    overlap_seconds: int = Field(
        default=300, ge=0, description="re-read window before the checkpoint"
    )
    max_attempts: int = Field(default=6, ge=1, le=20)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @property
    def policy(self) -> HttpPolicy:
        return HttpPolicy(
            max_attempts=self.max_attempts,
            concurrency=self.concurrency,
            requests_per_second=self.rate_limit,
        )

    def token(self, config_file: str | None) -> str | None:
        """The bearer token, read now from the environment or the named file."""
        if self.auth.type != "bearer":
            return None
        where = f"{config_file or 'config'}: source {self.name!r}: auth"
        if self.auth.token_env:
            value = os.environ.get(self.auth.token_env)
            if not value:
                raise ConfigError(
                    f"{where}.token_env: environment variable {self.auth.token_env} is not set"
                )
            return value.strip()
        if self.auth.token_file:
            path = Path(self.auth.token_file)
            if not path.is_file():
                raise ConfigError(f"{where}.token_file: no file {path}")
            return path.read_text(encoding="utf-8").strip()
        raise ConfigError(f"{where}: a bearer source needs token_env or token_file")


def load_sources(settings: Settings) -> list[SourceConfig]:
    sources: list[SourceConfig] = []
    file = settings.config_file or "settings"
    for index, raw in enumerate(settings.sources):
        label = raw.get("name") if isinstance(raw, dict) else None
        try:
            source = SourceConfig.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join(str(part) for part in first["loc"]) or "(table)"
            who = f"source {label!r}" if label else f"sources[{index}]"
            raise ConfigError(f"{file}: {who}: {key}: {first['msg']}") from exc
        if any(s.name == source.name for s in sources):
            raise ConfigError(f"{file}: source {source.name!r}: name: used twice")
        sources.append(source)
    return sources


def pick_sources(settings: Settings, name: str | None) -> list[SourceConfig]:
    sources = load_sources(settings)
    if not sources:
        raise ConfigError(
            f"{settings.config_file or 'no config file'}: no [[sources]] configured to sync"
        )
    if name is None:
        return sources
    chosen = [s for s in sources if s.name == name]
    if not chosen:
        known = ", ".join(s.name for s in sources)
        raise ConfigError(f"no source named {name!r} (configured: {known})")
    return chosen


def describe(source: SourceConfig) -> dict[str, Any]:
    return {
        "name": source.name,
        "kind": source.kind,
        "base_url": source.base_url,
        "mode": source.mode,
    }
