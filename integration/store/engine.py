"""Opening the store: engine creation, SQLite pragmas, and Alembic migrations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from integration.errors import StoreError

MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the API read while an import writes; NORMAL is durable at each checkpoint.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def create_store_engine(database_url: str) -> Engine:
    """An engine for the store URL; a SQLite file's folder is created if needed."""
    try:
        url = make_url(database_url)
    except ArgumentError as exc:
        raise StoreError(f"JOURNEY_DATABASE_URL is not a database URL: {exc}") from exc
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.drivername == "postgresql":
        # Users write postgresql://; the driver we ship is psycopg 3.
        url = url.set(drivername="postgresql+psycopg")
    return create_engine(url, pool_size=5, max_overflow=5, pool_pre_ping=True)


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to `revision`; running it again changes nothing."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    except OperationalError as exc:
        raise StoreError(f"cannot migrate the store at {engine.url!r}: {exc.orig}") from exc


def open_store(database_url: str) -> Engine:
    """Create the engine and migrate: what every command does first."""
    engine = create_store_engine(database_url)
    migrate(engine)
    return engine
