"""Which stored version of a resource is its current one.

A version arriving later replaces a live current version when it is as new or
newer (by `last_updated`), and a tombstone only when it is strictly newer; a
version with no `last_updated` counts as the newest (see `integration.store.raw`).
One definition, used by both ways versions are written: the row-by-row upsert
(`raw`) and the COPY path for trusted bulk files (`bulk_copy`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_

from integration.store.schema import current_resources

# A current row's key, and what a newer version changes in it.
CURRENT_KEYS = ("source", "resource_type", "resource_id")
CURRENT_UPDATED = ("raw_id", "last_updated", "subject_id", "needs_derive", "deleted")


def replaces_current(excluded: Any) -> ColumnElement[bool]:
    """Does the arriving version (an upsert's `excluded` row) replace the current one?"""
    table = current_resources
    arriving = func.coalesce(excluded.last_updated, "9999")
    return or_(
        table.c.last_updated.is_(None),
        and_(table.c.deleted.is_(False), arriving >= table.c.last_updated),
        arriving > table.c.last_updated,
    )
