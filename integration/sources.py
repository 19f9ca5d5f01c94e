"""Configured FHIR sources: the model of a `[[sources]]` table in the config file.

`Settings.sources` is a list of these, so a bad table fails when settings load
(the error names the file, the table's index and the key). A minimal source is
name, kind, base_url and mode. Secrets never sit in the file: a bearer token is
read from the environment variable or the file the source names, when a sync
builds the source's auth. This module never imports `integration.config`:
`Settings` imports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from connectors.rest.auth import BearerToken, ClientCredentials, SmartBackendServices
from connectors.rest.http import HttpPolicy
from integration.derived_types import default_types
from integration.errors import ConfigError
from integration.secrets import read_secret
from integration.source_names import MAX_SOURCE_NAME, SOURCE_NAME_PATTERN

DEFAULT_TYPES = default_types()


class AuthConfig(BaseModel):
    """How to authenticate; secrets are named (environment variable or file), never given."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["none", "bearer", "client_credentials", "smart-backend"] = "none"
    token_env: str | None = Field(default=None, description="bearer: variable holding the token")
    token_file: str | None = Field(default=None, description="bearer: file holding the token")
    client_id: str | None = None
    client_secret_env: str | None = None
    client_secret_file: str | None = None
    private_key_file: str | None = Field(default=None, description="smart-backend: PEM key")
    algorithm: Literal["RS384", "ES384"] = "RS384"
    key_id: str | None = None
    token_url: str | None = Field(
        default=None, description="default: from .well-known/smart-configuration"
    )
    scope: str = "system/*.read"


class MembersConfig(BaseModel):
    """A payer's member roster: pull only these Patients and what belongs to them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    group: str | None = Field(default=None, description="a Group on the server, as Group/{id}")
    identifiers: tuple[str, ...] = Field(
        default=(), description="Patient identifiers, system|value"
    )
    coverage_payor: str | None = Field(
        default=None,
        description="the beneficiaries of this payor's Coverages in force, as Organization/{id}",
    )
    batch_size: int = Field(default=50, ge=1, le=500, description="patients per search")
    on_leaving: Literal["keep", "retire", "purge"] = Field(
        default="keep",
        description="what happens to the data held about a member who leaves: keep it "
        "in the journey, retire it from the journey (kept stored; back if they return), "
        "or purge it from the store",
    )

    @field_validator("coverage_payor")
    @classmethod
    def _payor_reference(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("Organization/"):
            raise ValueError("must be written Organization/{id}")
        return value

    @field_validator("group")
    @classmethod
    def _group_reference(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("Group/"):
            raise ValueError("must be written Group/{id}")
        return value

    @field_validator("identifiers")
    @classmethod
    def _system_value(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            system, sep, code = value.partition("|")
            if not sep or not system or not code:
                raise ValueError("each identifier must be written system|value")
        return values


class ExportConfig(BaseModel):
    """How a `mode = "bulk"` source exports: `[sources.export]`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    level: Literal["system", "patient", "group"] = Field(
        default="system", description="/$export, /Patient/$export or /Group/{id}/$export"
    )
    group: str | None = Field(default=None, description="for level group: Group/{id}")
    type_filter: tuple[str, ...] = Field(
        default=(), description="_typeFilter queries, e.g. Encounter?status=finished"
    )
    deadline_seconds: float = Field(
        default=3600, gt=0, description="stop polling after this long (the next sync resumes)"
    )
    download_concurrency: int = Field(default=2, ge=1, le=16)

    @field_validator("group")
    @classmethod
    def _group_reference(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("Group/"):
            raise ValueError("must be written Group/{id}")
        return value

    @model_validator(mode="after")
    def _group_for_group_level(self) -> ExportConfig:
        if self.level == "group" and self.group is None:
            raise ValueError('level group needs group = "Group/{id}"')
        return self

    def kick_off_url(self, base_url: str) -> str:
        if self.level == "group" and self.group:
            return f"{base_url}/{self.group}/$export"
        return f"{base_url}/Patient/$export" if self.level == "patient" else f"{base_url}/$export"


class SourceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(min_length=1, max_length=MAX_SOURCE_NAME, pattern=SOURCE_NAME_PATTERN)
    kind: Literal["provider", "payer"]
    base_url: str
    mode: Literal["rest", "bulk"]
    auth: AuthConfig = AuthConfig()
    resource_types: tuple[str, ...] = DEFAULT_TYPES
    page_size: int = Field(default=100, ge=1, le=1000)
    concurrency: int = Field(default=4, ge=1, le=32)
    rate_limit: float | None = Field(default=None, gt=0, description="requests per second")
    overlap_seconds: int = Field(
        default=300, ge=0, description="re-read window before the checkpoint"
    )
    max_attempts: int = Field(default=6, ge=1, le=20)
    members: MembersConfig | None = None
    reconcile_every_days: float | None = Field(
        default=None,
        ge=0,
        description=(
            "REST, types without declared history: list the ids the server holds this "
            "often and treat the missing ones as deleted (0: every sync; unset: never)"
        ),
    )
    validate_resources: bool = Field(
        default=True,
        alias="validate",
        description="false only for a trusted source: skip FHIR validation (faster)",
    )
    export: ExportConfig = ExportConfig()

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

    def build_auth(self, config_file: str | None) -> httpx.Auth | None:
        """The httpx auth flow for this source, with its secrets read now."""
        auth = self.auth
        where = f"{config_file or 'config'}: source {self.name!r}: auth"
        if auth.type == "none":
            return None
        if auth.type == "bearer":
            return BearerToken(read_secret(where, "token", auth.token_env, auth.token_file))
        if not auth.client_id:
            raise ConfigError(f"{where}.client_id: required for {auth.type}")
        if auth.type == "client_credentials":
            secret = read_secret(
                where, "client_secret", auth.client_secret_env, auth.client_secret_file
            )
            return ClientCredentials(
                self.base_url, auth.client_id, secret, auth.scope, token_url=auth.token_url
            )
        if not auth.private_key_file or not Path(auth.private_key_file).is_file():
            raise ConfigError(f"{where}.private_key_file: a readable PEM file is required")
        try:
            return SmartBackendServices.from_pem_file(
                self.base_url,
                auth.client_id,
                Path(auth.private_key_file),
                auth.scope,
                algorithm=auth.algorithm,
                key_id=auth.key_id,
                token_url=auth.token_url,
            )
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from exc


def pick_sources(
    sources: Sequence[SourceConfig], name: str | None, config_file: str | None
) -> list[SourceConfig]:
    """The source named `name`, or every source; an error when there is none to sync."""
    if not sources:
        raise ConfigError(f"{config_file or 'no config file'}: no [[sources]] configured to sync")
    if name is None:
        return list(sources)
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
