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

from pydantic import BaseModel, ConfigDict, Field

from integration.access.principal import Principal
from integration.access.scopes import ALL, Permission, permissions
from integration.errors import ConfigError
from integration.secrets import read_secret
from integration.source_names import SOURCE_NAME_PATTERN

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


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


@dataclass(frozen=True, slots=True)
class _Entry:
    digest: bytes
    principal: Principal


def _principal(client_id: str, scopes: Sequence[str]) -> Principal:
    granted, patient_only = permissions(scopes)
    if patient_only:
        # A key has no patient claim to limit it to: patient-level scopes need a token.
        granted = granted - {Permission.READ_PEOPLE}
    return Principal(client_id, "api-key", granted)


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
        entries.append(_Entry(key_digest, _principal(client.id, client.scopes)))
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
        self._reload_if_changed()
        given = digest(presented)
        found = None
        for entry in self._entries:
            if hmac.compare_digest(given, entry.digest):
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
