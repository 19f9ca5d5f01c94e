"""API-key clients: `[[clients]]` tables of the config file, and JOURNEY_API_KEYS.

A `[[clients]]` table names a client, its scopes, and its key by reference: an
environment variable (`key_env`), a file (`key_file`) or the key's SHA-256
(`key_sha256`), never the key itself. Keys are compared in constant time against
their SHA-256, so no key is held in memory longer than a request. A key file or the
config file that changes is read again at the next request (at most once a second),
so a key is rotated without a restart: write the new key (or hash), and the old one
stops working. JOURNEY_API_KEYS are the embedded default's keys: each has every
journey permission.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from integration.access.population import WITHIN_A_POPULATION, Population, population_of
from integration.access.principal import Principal
from integration.access.scopes import ALL, Permission, permissions
from integration.errors import ConfigError
from integration.secrets import read_secret
from integration.source_names import SOURCE_NAME_PATTERN, is_source_name

RECHECK_SECONDS = 1.0
log = logging.getLogger(__name__)


class ClientConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=64, pattern=SOURCE_NAME_PATTERN)
    scopes: list[str] = Field(min_length=1, description="journey/... or SMART scopes")
    key_env: str | None = Field(default=None, description="variable holding the key")
    key_file: str | None = Field(default=None, description="file holding the key")
    key_sha256: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$", description="the key's SHA-256, hex"
    )
    # Its population (`integration.access.population`); neither: everyone.
    sources: list[str] = Field(
        default_factory=list, description="only people with a Patient from these sources"
    )
    rosters: list[str] = Field(
        default_factory=list,
        description="only people on these sources' member rosters ([sources.members])",
    )

    @model_validator(mode="after")
    def _population_scopes(self) -> ClientConfig:
        for name in [*self.sources, *self.rosters]:
            if not is_source_name(name):
                raise ValueError(f"{name!r} is not a source name")
        if self.population is not None:
            granted, _ = permissions(self.scopes)
            wider = sorted(p.value for p in granted - WITHIN_A_POPULATION)
            if wider:
                raise ValueError(
                    f"a client limited to a population may not hold {', '.join(wider)}: "
                    "those span the whole store"
                )
        return self

    @property
    def population(self) -> Population | None:
        return population_of(self.sources, self.rosters)

    @property
    def has_key(self) -> bool:
        """A client without a key is an OAuth client: the table gives its population."""
        return bool(self.key_env or self.key_file or self.key_sha256)


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


@dataclass(frozen=True, slots=True)
class _Entry:
    digest: bytes
    principal: Principal


def _principal(client: ClientConfig) -> Principal:
    granted, patient_only = permissions(client.scopes)
    if patient_only:
        # A key has no patient claim to limit it to: patient-level scopes need a token.
        granted = granted - {Permission.READ_PEOPLE}
    return Principal(client.id, "api-key", granted, population=client.population)


def _entries(
    clients: Sequence[ClientConfig],
    legacy_keys: Sequence[str],
    where: str,
    strict: bool = True,
) -> list[_Entry]:
    """The key ring's entries. A client whose key cannot be read stops the load when
    `strict` (at start); on a reload it is left out (its key no longer works: a key
    file deleted revokes it), with an error logged."""
    entries = [
        _Entry(digest(key), Principal(f"key-{digest(key).hex()[:12]}", "api-key", ALL))
        for key in legacy_keys
    ]
    for index, client in enumerate(clients):
        if not client.has_key:
            continue
        place = f"{where}: clients[{index}] (client {client.id!r})"
        try:
            if client.key_sha256:
                key_digest = bytes.fromhex(client.key_sha256)
            else:
                key_digest = digest(read_secret(place, "key", client.key_env, client.key_file))
        except ConfigError:
            if strict:
                raise
            log.error("%s: its key cannot be read: left out until it can", place)
            continue
        if any(hmac.compare_digest(key_digest, e.digest) for e in entries):
            message = f"{place}: its key is another client's too"
            if strict:
                raise ConfigError(message)
            log.error("%s: left out", message)
            continue
        entries.append(_Entry(key_digest, _principal(client)))
    return entries


class KeyRing:
    """The API keys this server accepts now, each with its client."""

    def __init__(
        self,
        clients: Sequence[ClientConfig],
        legacy_keys: Sequence[str],
        config_file: str | None,
    ) -> None:
        self._config_file = Path(config_file) if config_file else None
        self._legacy = list(legacy_keys)
        self._lock = threading.Lock()
        self._checked = time.monotonic()
        self._stamps = self._file_stamps(clients)
        self._entries = _entries(clients, self._legacy, config_file or "settings")

    def principal(self, presented: str) -> Principal | None:
        """The client whose key this is, or None. Every key is compared, in constant time."""
        return self.principal_for_digest(digest(presented))

    def principal_for_digest(self, key_digest: bytes) -> Principal | None:
        """The client whose key has this SHA-256 now (a signed-in UI session checks its
        key again on every page: a revoked key ends it)."""
        self._reload_if_changed()
        found = None
        for entry in self._entries:
            if hmac.compare_digest(key_digest, entry.digest):
                found = entry.principal
        return found

    @property
    def configured(self) -> bool:
        self._reload_if_changed()
        return bool(self._entries)

    def _file_stamps(self, clients: Sequence[ClientConfig]) -> dict[str, float]:
        files = [c.key_file for c in clients if c.key_file]
        if self._config_file is not None:
            files.append(str(self._config_file))
        return {name: _mtime(name) for name in files}

    def _reload_if_changed(self) -> None:
        if time.monotonic() - self._checked < RECHECK_SECONDS:
            return
        with self._lock:
            self._checked = time.monotonic()
            if all(_mtime(name) == stamp for name, stamp in self._stamps.items()):
                return
            where = str(self._config_file)
            try:
                clients = self._read_clients()
                entries = _entries(clients, self._legacy, where, strict=False)
            except (OSError, ValueError, TypeError, ConfigError) as exc:
                # A half-written file keeps the keys as they were until it is whole.
                log.warning("%s: [[clients]] not read again: %s", where, type(exc).__name__)
                self._stamps = {name: _mtime(name) for name in self._stamps}
                return
            self._stamps = self._file_stamps(clients)
            self._entries = entries

    def _read_clients(self) -> list[ClientConfig]:
        if self._config_file is None:
            return []
        tables: Any = tomllib.loads(self._config_file.read_text(encoding="utf-8"))
        return [ClientConfig(**table) for table in tables.get("clients", [])]


def _mtime(name: str) -> float:
    try:
        return Path(name).stat().st_mtime
    except OSError:
        return -1.0


class ClientDirectory:
    """Each `[[clients]]` table's population by client id, read again when the config
    file changes (at most once a second): for OAuth clients, whose tokens name no
    population, and for the worker, which delivers subscriptions on clients' behalf."""

    def __init__(self, clients: Sequence[ClientConfig], config_file: str | None) -> None:
        self._config_file = Path(config_file) if config_file else None
        self._lock = threading.Lock()
        self._checked = time.monotonic()
        self._stamp = _mtime(str(self._config_file)) if self._config_file else -1.0
        self._clients = {client.id: client for client in clients}

    def listed(self, client_id: str) -> bool:
        self._reload_if_changed()
        return client_id in self._clients

    def of(self, client_id: str) -> Population | None:
        """The client's population; None for everyone (or a client not listed)."""
        self._reload_if_changed()
        client = self._clients.get(client_id)
        return client.population if client is not None else None

    def _reload_if_changed(self) -> None:
        if self._config_file is None or time.monotonic() - self._checked < RECHECK_SECONDS:
            return
        with self._lock:
            self._checked = time.monotonic()
            stamp = _mtime(str(self._config_file))
            if stamp == self._stamp:
                return
            self._stamp = stamp
            try:
                tables: Any = tomllib.loads(self._config_file.read_text(encoding="utf-8"))
                clients = [ClientConfig(**table) for table in tables.get("clients", [])]
            except (OSError, ValueError, TypeError) as exc:
                log.warning(
                    "%s: [[clients]] not read again: %s", self._config_file, type(exc).__name__
                )
                return
            self._clients = {client.id: client for client in clients}
