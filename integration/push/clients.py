"""Who may push to /fhir: `[[push_clients]]` tables, one key per pushing source.

The credential identifies the source: everything pushed with a key is stored
under that key's source name. Keys are read from an environment variable or
a file the table names, never from the config file itself.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from integration.config import MAX_SOURCE_NAME, SOURCE_NAME_PATTERN, Settings
from integration.errors import ConfigError
from integration.secrets import read_secret


class PushClientConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(min_length=1, max_length=MAX_SOURCE_NAME, pattern=SOURCE_NAME_PATTERN)
    key_env: str | None = Field(default=None, description="variable holding the API key")
    key_file: str | None = Field(default=None, description="file holding the API key")


def load_push_keys(settings: Settings) -> dict[str, str]:
    """API key -> source name, for every configured push client."""
    file = settings.config_file or "settings"
    keys: dict[str, str] = {}
    for index, raw in enumerate(settings.push_clients):
        try:
            client = PushClientConfig.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join(str(part) for part in first["loc"]) or "(table)"
            raise ConfigError(f"{file}: push_clients[{index}]: {key}: {first['msg']}") from exc
        where = f"{file}: push_clients[{index}] (source {client.source!r})"
        key = read_secret(where, "key", client.key_env, client.key_file)
        if key in keys:
            raise ConfigError(f"{where}: the same key is given to two push clients")
        keys[key] = client.source
    return keys
