"""The store: a raw zone (every resource as received, plus the quarantine)
and a journey zone (people, identity links, job records), on SQLite or
PostgreSQL through SQLAlchemy Core. Schema changes are Alembic migrations."""
