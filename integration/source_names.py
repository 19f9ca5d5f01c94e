"""The one rule a source name follows, wherever it is given: [[sources]], [[push_clients]]
and `journey import --source`.

Its own module so the config models and `Settings` can both use it without importing
each other.
"""

from __future__ import annotations

import re

SOURCE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
MAX_SOURCE_NAME = 200
SOURCE_NAME_RULE = (
    f"1-{MAX_SOURCE_NAME} letters, digits, '.', '_' or '-', starting with a letter or digit"
)


def is_source_name(name: str) -> bool:
    return len(name) <= MAX_SOURCE_NAME and re.fullmatch(SOURCE_NAME_PATTERN, name) is not None
