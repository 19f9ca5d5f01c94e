"""Batched INSERTs go to the driver with SQL compiled once per statement shape."""

from __future__ import annotations

from sqlalchemy import Column, Engine, MetaData, String, Table, bindparam, select

from integration.store import upsert as upsert_module
from integration.store.upsert import execute_many, upsert

METADATA = MetaData()
SETTINGS = Table(
    "test_upsert_settings",
    METADATA,
    Column("name", String, primary_key=True),
    Column("value", String),
)


def values(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {row.name: row.value for row in conn.execute(select(SETTINGS))}


def set_unless(engine: Engine, rows: list[dict[str, str]], frozen: str) -> None:
    """Upsert rows, leaving a stored value equal to `frozen` as it is: the literal is a
    bound value the statement carries itself, not one of the rows'."""
    with engine.begin() as conn:
        upsert(
            conn,
            SETTINGS,
            rows,
            keys=("name",),
            update=("value",),
            where=lambda _excluded: SETTINGS.c.value != frozen,
        )


def test_statements_of_one_shape_each_carry_their_own_values(engine: Engine) -> None:
    METADATA.create_all(engine)
    set_unless(engine, [{"name": "a", "value": "locked"}, {"name": "b", "value": "open"}], "x")
    # The same shape twice: compiled once, but each with its own literal.
    set_unless(engine, [{"name": "a", "value": "1"}, {"name": "b", "value": "1"}], "locked")
    assert values(engine) == {"a": "locked", "b": "1"}
    set_unless(engine, [{"name": "a", "value": "2"}, {"name": "b", "value": "2"}], "1")
    assert values(engine) == {"a": "2", "b": "1"}


def test_a_statement_shape_is_compiled_once(engine: Engine) -> None:
    METADATA.create_all(engine)
    upsert_module._COMPILED.clear()
    set_unless(engine, [{"name": "a", "value": "1"}], "x")
    compiled = dict(upsert_module._COMPILED)
    set_unless(engine, [{"name": "b", "value": "2"}], "y")
    assert compiled == upsert_module._COMPILED, "the same shape was compiled again"
    assert len(compiled) == 1
    with engine.begin() as conn:  # other row keys: another shape
        execute_many(conn, SETTINGS.insert(), [{"name": "c"}])
    assert len(upsert_module._COMPILED) == 2
    assert values(engine) == {"a": "1", "b": "2", "c": None}


def test_values_given_with_params_are_sent(engine: Engine) -> None:
    """A statement's values set with `.params()` are outside its cache key: they reach
    the store all the same (not NULL), each statement's own."""
    METADATA.create_all(engine)
    for value in ("first", "second"):
        given = select(bindparam("given", type_=String)).params(given=value).scalar_subquery()
        with engine.begin() as conn:
            execute_many(conn, SETTINGS.insert().values(value=given), [{"name": value}])
    assert values(engine) == {"first": "first", "second": "second"}
