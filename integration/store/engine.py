"""Opening the store: engine creation, SQLite pragmas, and Alembic migrations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from integration.config import Settings
from integration.errors import StoreError
from integration.store.locks import file_lock, sqlite_lock_file

MIGRATIONS = Path(__file__).parent / "migrations"


DEFAULT_POOL_SIZE = 10


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the API read while an import writes; NORMAL is durable at each checkpoint.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def create_store_engine(database_url: str, pool_size: int = DEFAULT_POOL_SIZE) -> Engine:
    """An engine for the store URL; a SQLite file's folder is created if needed.

    Up to `pool_size` connections are kept open, and as many again are opened under
    load and closed after use. The API answers from a pool of worker threads: with
    fewer kept connections than concurrent requests, every request beyond them
    paid for a new connection (a third of a journey read's time on SQLite, where
    each new connection also sets its pragmas)."""
    try:
        url = make_url(database_url)
    except ArgumentError as exc:
        raise StoreError(f"JOURNEY_DATABASE_URL is not a database URL: {exc}") from exc
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False},
            pool_size=pool_size,
            max_overflow=pool_size,
            hide_parameters=True,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.drivername == "postgresql":
        # Users write postgresql://; the driver we ship is psycopg 3.
        url = url.set(drivername="postgresql+psycopg")
    # hide_parameters: an error's message would otherwise quote the statement's
    # parameters, which are resource content (names, birth dates, identifiers).
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        hide_parameters=True,
    )


def refresh_statistics(engine: Engine, tables: tuple[str, ...]) -> None:
    """ANALYZE tables that grew a lot, on PostgreSQL. Its query plans (cached per
    connection once a query has run five times) assume the sizes of the last
    ANALYZE; where autovacuum is off or has not come round yet, an import into a
    fresh store kept the plan of an empty table: a sequential scan per batch,
    minutes a batch at 200k rows. ANALYZE makes every connection plan again.
    SQLite's planner assumes indexes are selective without statistics."""
    if engine.url.get_backend_name() != "postgresql":
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in tables:
            conn.execute(text(f"ANALYZE {table}"))


class GrowingTables:
    """Statistics kept up as one run (an import, a derivation) grows some tables: a
    refresh after 5k, 20k, 80k ... rows, and one at the end of a run of 1,000 or more."""

    FIRST = 5_000
    AT_THE_END = 1_000

    def __init__(self, engine: Engine, tables: tuple[str, ...]) -> None:
        self.engine = engine
        self.tables = tables
        self.rows = 0
        self._next = self.FIRST

    def grew(self, rows: int) -> None:
        self.rows += rows
        if self.rows >= self._next:
            self._next *= 4
            refresh_statistics(self.engine, self.tables)

    def finish(self) -> None:
        if self.rows >= self.AT_THE_END:
            refresh_statistics(self.engine, self.tables)


def open_configured_store(settings: Settings) -> Engine:
    """`open_store` as the settings say: URL, migrate on start or not, pool size."""
    return open_store(settings.database_url, settings.migrate_on_start, settings.db_pool_size)


# Any constant: every fhir-journey process takes the same PostgreSQL advisory lock.
_MIGRATION_LOCK_KEY = 0x6A6F75726E6579


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to `revision`; running it again changes nothing. Processes
    starting together (an API and a sync, several workers) migrate one at a time."""
    config = _alembic_config()
    sqlite = engine.url.get_backend_name() == "sqlite"
    try:
        # SQLite's DDL is not serialised for us: a file lock beside the database.
        with file_lock(sqlite_lock_file(engine, "migrate-lock")), engine.begin() as conn:
            if not sqlite:
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
    except OperationalError as exc:
        raise StoreError(f"cannot migrate the store at {engine.url!r}: {exc.orig}") from exc


def open_store(
    database_url: str, migrate_on_start: bool = True, pool_size: int = DEFAULT_POOL_SIZE
) -> Engine:
    """Create the engine and migrate: what every command does first. With
    `migrate_on_start` off (migrations are a deploy step), check instead that the
    schema is current, and say how to fix it when it is not."""
    engine = create_store_engine(database_url, pool_size)
    if migrate_on_start:
        migrate(engine)
        return engine
    current = schema_revision(engine)
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    if current != head:
        engine.dispose()
        raise StoreError(
            f"the store at {engine.url.render_as_string(hide_password=True)} is at schema "
            f"revision {current or 'none'}, this version needs {head}: run `journey db upgrade` "
            "(JOURNEY_MIGRATE_ON_START is off)"
        )
    return engine


def schema_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except OperationalError as exc:
        raise StoreError(f"cannot open the store at {engine.url!r}: {exc.orig}") from exc
