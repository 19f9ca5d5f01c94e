"""Who may push to /fhir: `[[push_clients]]` tables, one key per pushing source.

The credential identifies the source: everything pushed with a key is stored
under that key's source name. Keys are read from an environment variable or
a file the table names, never from the config file itself. `Settings.push_clients`
is a list of `PushClientConfig`, checked when settings load; the keys are read
when the API starts (`load_push_keys`). This module never imports
`integration.config`: `Settings` imports it.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from integration.errors import ConfigError
from integration.secrets import read_secret
from integration.source_names import MAX_SOURCE_NAME, SOURCE_NAME_PATTERN


class PushClientConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(min_length=1, max_length=MAX_SOURCE_NAME, pattern=SOURCE_NAME_PATTERN)
    key_env: str | None = Field(default=None, description="variable holding the API key")
    key_file: str | None = Field(default=None, description="file holding the API key")


def load_push_keys(clients: Sequence[PushClientConfig], config_file: str | None) -> dict[str, str]:
    """API key -> source name, for every configured push client, the keys read now."""
    file = config_file or "settings"
    keys: dict[str, str] = {}
    for index, client in enumerate(clients):
        where = f"{file}: push_clients[{index}] (source {client.source!r})"
        key = read_secret(where, "key", client.key_env, client.key_file)
        if key in keys:
            raise ConfigError(f"{where}: the same key is given to two push clients")
        keys[key] = client.source
    return keys
