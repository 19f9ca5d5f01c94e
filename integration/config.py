"""One settings object for the whole product: environment first, then a TOML file.

Every setting is an environment variable with the prefix `JOURNEY_`
(`JOURNEY_DATABASE_URL`, `JOURNEY_API_KEYS`, ...). A TOML file named by
`JOURNEY_CONFIG`, or `journey.toml` in the working directory if present,
may set the same keys without the prefix (`database_url = "..."`).
Environment variables win over the file. The README lists every setting.
The `[[sources]]` and `[[push_clients]]` tables are typed too, so a bad table
fails here, at load, with its file, index and key named.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails, PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from integration.access.clients import ClientConfig
from integration.access.oauth import ASYMMETRIC, OAuthConfig
from integration.errors import ConfigError
from integration.limits import DEFAULT_MAX_DEPTH, MAX_DEPTH_CEILING
from integration.logs import LogFormat
from integration.push_clients import PushClientConfig
from integration.source_names import is_source_name
from integration.sources import SourceConfig
from integration.webhooks.config import SubscriptionConfig

DEFAULT_CONFIG_FILE = "journey.toml"
# The config file's [[tables]], each with the key that names a table's source: an error
# in one names the table by its index and, when it has a valid one, its source.
TABLES = {"sources": "name", "push_clients": "source", "subscriptions": "name", "clients": "id"}
USED_TWICE = "name_used_twice"


class Settings(BaseSettings):
    """fhir-journey settings. Build with `load_settings()`."""

    model_config = SettingsConfigDict(env_prefix="JOURNEY_", extra="forbid")

    database_url: str = Field(
        default="sqlite:///journey.db",
        description="SQLAlchemy URL of the store; default a SQLite file in the working directory",
    )
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="API keys accepted as 'Authorization: Bearer <key>', comma-separated",
    )
    clients: list[ClientConfig] = Field(
        default_factory=list,
        description="[[clients]] tables of the config file: API clients with their scopes "
        "and their key by reference (key_env, key_file or key_sha256)",
    )
    oauth_issuer: str | None = Field(
        default=None, description="OAuth2: the issuer whose bearer JWTs are accepted (iss)"
    )
    oauth_audience: str | None = Field(
        default=None, description="OAuth2: the audience tokens must be for (aud)"
    )
    oauth_jwks_url: str | None = Field(default=None, description="OAuth2: the issuer's JWKS URL")
    oauth_algorithms: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["RS256", "ES256", "PS256"],
        description="OAuth2: signature algorithms accepted (asymmetric only), comma-separated",
    )
    oauth_jwks_refresh_seconds: float = Field(
        default=300.0, gt=0, description="OAuth2: how often the issuer's keys are fetched again"
    )
    oauth_listed_clients_only: bool = Field(
        default=False,
        description="OAuth2: accept only tokens whose client is a [[clients]] table "
        "(else an unlisted client sees everyone its scopes allow)",
    )
    oauth_max_stale_hours: float = Field(
        default=24.0,
        gt=0,
        description="OAuth2: how long known keys keep working while the issuer is unreachable",
    )
    rate_limit_per_minute: int = Field(
        default=6000,
        ge=0,
        description="requests a client (key, OAuth client or pushing source) may make per "
        "minute in each API process, beyond its burst (0: no limit); then 429",
    )
    rate_limit_burst: int = Field(
        default=1000, ge=1, description="requests a client may make at once before the rate applies"
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="origins browsers may call the API from, comma-separated (none: CORS off)",
    )
    host: str = Field(default="127.0.0.1", description="address `journey serve` listens on")
    port: int = Field(default=8000, ge=1, le=65535, description="port `journey serve` listens on")
    public_url: str | None = Field(
        default=None,
        description="the URL clients reach `journey serve` at (FHIR Subscription "
        "notifications refer to it); default http://HOST:PORT",
    )
    rule_pack: Path | None = Field(
        default=None,
        description="no longer read: the rule pack is a property of the store "
        "(set it once with `journey remap --pack FILE`)",
    )
    max_resource_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="largest single resource accepted: an NDJSON line, a non-Bundle JSON "
        "file, or a pushed resource (alone or in a Bundle)",
    )
    max_resource_depth: int = Field(
        default=DEFAULT_MAX_DEPTH,
        ge=8,
        le=MAX_DEPTH_CEILING,
        description="deepest nesting of objects and arrays in one resource (the resource is "
        "level 1); deeper ones are refused or quarantined before validation",
    )
    batch_size: int = Field(
        default=500,
        ge=1,
        le=10_000,
        description="resources written per store transaction (sync pages, pushes) and mapped "
        "per derivation round",
    )
    import_batch_size: int = Field(
        default=5_000,
        ge=1,
        le=50_000,
        description="resources written per store transaction when importing files and Bulk "
        "Data downloads (fewer, larger transactions: measured 5% faster than 1,000)",
    )
    trusted_bulk_copy: bool = Field(
        default=True,
        description="on PostgreSQL, store a trusted source's files (`journey import "
        "--trusted`, Bulk Data downloads) with COPY through a staging table instead of "
        "row-by-row statements: the same rows, faster",
    )
    page_size: int = Field(default=50, ge=1, le=1000, description="default page size of the API")
    feed_retention_days: int = Field(
        default=30,
        ge=1,
        le=3650,
        description="days the journey feed keeps its events (a cursor older than that "
        "answers 410: read the journeys again, then follow the feed)",
    )
    derive_process: bool = Field(
        default=True,
        description="on PostgreSQL, a REST pull that stores more than `batch_size` "
        "resources derives the journey in a process of its own beside the storing (a core "
        "each); off, or on SQLite (one writer at a time): in the pull's own process",
    )
    upkeep_share: float = Field(
        default=0.25,
        gt=0,
        le=1,
        description="while `journey serve` is answering requests, the share of time its "
        "background upkeep (recomputing episodes after imports and pushes) may take: "
        "after a batch of t seconds it rests t * (1 - share) / share; 1 never rests. "
        "When no request is being answered it runs flat out",
    )
    audit: bool = Field(
        default=True,
        description="write the audit trail: every read and write of patient data",
    )
    audit_retention_days: int = Field(
        default=2190,
        ge=1,
        description="days the audit trail is kept (`journey serve` prunes hourly); six "
        "years by default",
    )
    log_level: str = Field(default="INFO", description="logging level")
    log_format: LogFormat = Field(
        default="text",
        description="log lines as text, or json: one JSON object per line (time, level, "
        "logger, message, the request id while answering a request)",
    )
    sources: list[SourceConfig] = Field(
        default_factory=list,
        description="[[sources]] tables of the config file: FHIR servers `journey sync` pulls",
    )
    validation_processes: int = Field(
        default_factory=lambda: max(1, min(4, os.cpu_count() or 1)),
        ge=0,
        le=64,
        description="worker processes validating large imports and bulk files (0: in-process)",
    )
    push_clients: list[PushClientConfig] = Field(
        default_factory=list,
        description="[[push_clients]] tables of the config file: who may push to /fhir, "
        "as which source (source, key_env or key_file)",
    )
    request_time_limit_seconds: float = Field(
        default=30.0,
        ge=0,
        description="a read (GET) not answering within this many seconds gets a 503 with "
        "Retry-After; writes and answers already under way are not cut (0: no limit)",
    )
    max_request_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        description="largest request body of the journey API outside /fhir (subscriptions, "
        "reviewers' decisions); larger ones get a 413",
    )
    ui_session_hours: float = Field(
        default=8.0,
        gt=0,
        le=168,
        description="how long a web UI sign-in lasts (less when the token it came from "
        "expires sooner)",
    )
    max_push_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=1024,
        description="largest request body /fhir accepts (413 beyond it, read no further)",
    )
    max_bundle_entries: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="most entries a transaction or batch Bundle pushed to /fhir may hold "
        "(413 beyond it; stated in the CapabilityStatement)",
    )
    db_pool_size: int = Field(
        default=10,
        ge=1,
        le=100,
        description="store connections each process keeps open (as many again under load); "
        "on PostgreSQL mind max_connections across all API and worker processes",
    )
    migrate_on_start: bool = Field(
        default=True,
        description="every command brings the schema up to date first; off when migrations "
        "are a deploy step (`journey db upgrade`): commands then refuse an outdated schema",
    )
    sync_interval_seconds: int = Field(
        default=900, ge=1, description="`journey worker`: how often each sync unit runs"
    )
    worker_lease_seconds: int = Field(
        default=60,
        ge=2,
        description="`journey worker`: a claimed unit's lease, renewed every third of it; "
        "a dead worker's units are taken over this long after it stopped",
    )
    worker_retry_seconds: float = Field(
        default=30.0,
        gt=0,
        description="`journey worker`: first wait after a failed unit, doubling up to the "
        "sync interval",
    )
    worker_poll_seconds: float = Field(
        default=5.0, gt=0, description="`journey worker`: wait between looks for due units"
    )
    subscriptions: list[SubscriptionConfig] = Field(
        default_factory=list,
        description="[[subscriptions]] tables of the config file: webhook subscriptions "
        "kept as configuration (name, url, filters, secret_env or secret_file)",
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, description="webhooks: how long a delivery may take to be answered"
    )
    webhook_first_retry_seconds: float = Field(
        default=5.0,
        gt=0,
        description="webhooks: wait after a failed delivery, doubling with each failure "
        "(with jitter: half to all of it)",
    )
    webhook_max_retry_seconds: float = Field(
        default=3600.0, gt=0, description="webhooks: longest wait between two attempts"
    )
    webhook_give_up_hours: float = Field(
        default=72.0,
        gt=0,
        description="webhooks: an endpoint failing this long has its head event moved to "
        "the dead letters (replayable) and goes on with the next",
    )
    webhook_secret_overlap_hours: float = Field(
        default=24.0,
        ge=0,
        description="webhooks: after a secret rotation, how long deliveries are signed with "
        "the old secret too",
    )
    webhook_poll_seconds: float = Field(
        default=0.1, gt=0, description="webhooks: how often an idle endpoint looks for events"
    )
    config_file: str | None = Field(
        default=None, description="the config file these settings came from (set on load)"
    )

    @field_validator("oauth_algorithms")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        # An HMAC algorithm would let anyone holding the issuer's public key sign tokens.
        refused = [a for a in value if a not in ASYMMETRIC]
        if refused:
            raise ValueError(f"{refused[0]!r} is not accepted: one of {', '.join(ASYMMETRIC)}")
        return value

    @model_validator(mode="after")
    def _oauth_whole(self) -> Settings:
        named = [self.oauth_issuer, self.oauth_audience, self.oauth_jwks_url]
        if any(named) and not all(named):
            raise ValueError(
                "OAuth2 needs oauth_issuer, oauth_audience and oauth_jwks_url together"
            )
        return self

    @property
    def oauth(self) -> OAuthConfig | None:
        if not (self.oauth_issuer and self.oauth_audience and self.oauth_jwks_url):
            return None
        return OAuthConfig(
            self.oauth_issuer,
            self.oauth_audience,
            self.oauth_jwks_url,
            tuple(self.oauth_algorithms),
            self.oauth_jwks_refresh_seconds,
            self.oauth_max_stale_hours,
        )

    @property
    def fhir_base_url(self) -> str:
        """The FHIR base clients use: what notifications' references start with."""
        root = self.public_url or f"http://{self.host}:{self.port}"
        return root.rstrip("/") + "/fhir"

    @field_validator("api_keys", "oauth_algorithms", "cors_origins", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @field_validator("rule_pack")
    @classmethod
    def _pack_is_the_stores(cls, value: Path | None) -> Path | None:
        # Refused, not ignored: a process that silently mapped with another pack than
        # the one its operator set would mix two packs in one journey.
        if value is not None:
            raise ValueError(
                "no longer a process setting: the store holds its rule pack, which every "
                "process uses; set it once with `journey remap --pack FILE`"
            )
        return value

    @field_validator("sources")
    @classmethod
    def _source_names_once(cls, sources: list[SourceConfig]) -> list[SourceConfig]:
        # A source name keys its checkpoints and its stored resources: two tables with one
        # name would write over each other's state.
        seen: set[str] = set()
        for index, source in enumerate(sources):
            if source.name in seen:
                raise PydanticCustomError(USED_TWICE, "used twice", {"index": index, "key": "name"})
            seen.add(source.name)
        return sources

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings)


def _config_file(explicit: str | Path | None) -> Path | None:
    named = explicit or os.environ.get("JOURNEY_CONFIG")
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found (from --config or JOURNEY_CONFIG)")
        return path
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Settings from the environment, the config file and explicit overrides (CLI flags).

    Precedence: overrides > environment > file > defaults.
    """
    file_values: dict[str, Any] = {}
    path = _config_file(config_file)
    if path is not None:
        try:
            file_values = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    # Values passed to Settings() outrank the environment, so drop the file's
    # value for any key the environment sets.
    from_file = {k: v for k, v in file_values.items() if f"JOURNEY_{k.upper()}" not in os.environ}
    values = {**from_file, **{k: v for k, v in overrides.items() if v is not None}}
    try:
        return Settings(**values, config_file=str(path) if path else None)
    except ValidationError as exc:
        # `from None`: the ValidationError's text quotes the input, and a table can hold a
        # secret typed where a key belongs (`token = "..."`); the message names the key only.
        raise _config_error(exc.errors()[0], values, path) from None


def _config_error(error: ErrorDetails, values: dict[str, Any], path: Path | None) -> ConfigError:
    """The first problem of a failed load, naming where it is: the file, a table's index
    and source, the key."""
    loc = tuple(error["loc"])
    ctx = error.get("ctx") or {}
    if error["type"] == USED_TWICE:  # a check of the whole list names the table in its ctx
        loc = (*loc, ctx["index"], ctx["key"])
    setting = str(loc[0]) if loc else "(settings)"
    if setting in TABLES and len(loc) > 1 and isinstance(loc[1], int):
        index = loc[1]
        key = ".".join(str(part) for part in loc[2:]) or "(table)"
        env = f"JOURNEY_{setting.upper()}"
        origin = env if env in os.environ else str(path) if path else "settings"
        named = _table_name(values.get(setting), index, TABLES[setting], setting)
        return ConfigError(f"{origin}: {setting}[{index}]{named}: {key}: {error['msg']}")
    key = ".".join(str(part) for part in loc)
    origin = f"{path} or environment" if path else "environment"
    return ConfigError(f"setting {key!r} ({origin}, JOURNEY_{key.upper()}): {error['msg']}")


def _table_name(tables: Any, index: int, name_key: str, setting: str) -> str:
    """` (source 'x')` (or `subscription`) for a table with a valid name, else nothing."""
    table = tables[index] if isinstance(tables, list) and index < len(tables) else None
    name = table.get(name_key) if isinstance(table, dict) else getattr(table, name_key, None)
    label = {"subscriptions": "subscription", "clients": "client"}.get(setting, "source")
    return f" ({label} {name!r})" if isinstance(name, str) and is_source_name(name) else ""
