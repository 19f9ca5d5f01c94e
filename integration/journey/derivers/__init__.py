"""One module per derived resource type, each with one `derive` (see `base.Derive`).

Which types are derived, in what order and with what flags is declared in
`integration.derived_types`; `resolve` imports the function an entry names.
"""

from __future__ import annotations

import importlib
from functools import cache

from integration.derived_types import DerivedType
from integration.journey.derivers.base import Derive


def resolve(entry: DerivedType) -> Derive:
    """The function that derives a batch of `entry`'s type; raises naming the entry."""
    return _load(entry.resource_type, entry.derive)


@cache
def _load(resource_type: str, path: str) -> Derive:
    module_name, _, name = path.partition(":")
    try:
        derive: Derive = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise LookupError(
            f"derived type {resource_type}: cannot load its deriver {path!r} ({exc})"
        ) from exc
    if not callable(derive):
        raise LookupError(f"derived type {resource_type}: {path!r} is not a function")
    return derive
