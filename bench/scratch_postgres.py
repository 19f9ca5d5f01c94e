"""A throw-away PostgreSQL database for a benchmark: created empty, dropped after."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text

from integration.store.engine import create_store_engine


@contextmanager
def fresh_postgres(admin_url: str, label: str = "") -> Iterator[str]:
    """A new, empty database on the admin URL's server (its URL), dropped after."""
    admin = create_store_engine(admin_url).execution_options(isolation_level="AUTOCOMMIT")
    name = f"journey_bench_{label}{'_' if label else ''}{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        with scratch_database(admin, name) as url:
            yield url
    finally:
        admin.dispose()


@contextmanager
def scratch_database(admin: Engine, name: str) -> Iterator[str]:
    """Database `name`, created empty on `admin`'s server (an AUTOCOMMIT engine), its
    URL, dropped after even while connected. The tests' throw-away stores too."""
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
