"""Opaque paging cursors: base64url of the last row's sort key."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from integration.api.problems import ApiProblem


def encode_cursor(key: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(key)).decode().rstrip("=")


def decode_cursor(cursor: str, length: int) -> list[str]:
    """The key inside a cursor, checked to be `length` strings; 400 otherwise."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as exc:
        raise ApiProblem(400, "Bad Request", "cursor is not one this API issued") from exc
    if not (
        isinstance(key, list)
        and len(key) == length
        and all(isinstance(k, str) and "\x00" not in k for k in key)
    ):
        raise ApiProblem(400, "Bad Request", "cursor is not one this API issued")
    return key
