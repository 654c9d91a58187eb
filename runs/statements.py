"""The lifecycle's hot statements, written once per run model and shape.

A claim or a transition is a primary-key statement the database runs in a fraction of a
millisecond; building and compiling its QuerySet cost the worker more CPU than that. Here the SQL
of each shape (which columns an UPDATE sets, how many statuses it allows) is made once with the
backend's quoting, and each call only converts its values as the ORM would: `get_db_prep_save`
on the way in, the backend's and the field's converters on the way out.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from functools import cache
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from .models import Run

R = TypeVar("R", bound=Run)
T = TypeVar("T")

# What a connection the server dropped (a restart, wait_timeout) raises on its next use.
DATABASE_ERRORS = (OperationalError, InterfaceError)

Converter = Callable[[Any, Any, Any], Any]


def database() -> Any:
    """This thread's default connection. `django.db.connection` is a proxy that looks it up again
    at every attribute, a dozen times in one statement's values: taken once, not per use."""
    return connections[DEFAULT_DB_ALIAS]


def quote(name: str | None) -> str:
    assert name, "a table or a concrete column always has a name"
    return connection.ops.quote_name(name)


def column_of(model: type[Run], name: str) -> str:
    return quote(model._meta.get_field(name).column)  # type: ignore[union-attr]


class RowReader:
    """`SELECT <every column> FROM <table> WHERE <pk> = %s`, and the row made a model instance."""

    def __init__(self, model: type[Run]):
        meta = model._meta
        self.model = model
        self.fields = list(meta.concrete_fields)
        columns = ", ".join(quote(field.column) for field in self.fields)
        self.sql = (
            f"SELECT {columns} FROM {quote(meta.db_table)} WHERE {quote(meta.pk.column)} = %s"
        )
        # What the compiler applies to each selected column (UUIDs, aware datetimes, booleans,
        # JSON): the backend's converters first, then the field's own.
        self.converters: list[tuple[int, list[Converter], Any]] = []
        for index, field in enumerate(self.fields):
            column = field.get_col(meta.db_table)
            found = connection.ops.get_db_converters(column) + field.get_db_converters(connection)
            if found:
                self.converters.append((index, found, column))
        self.attnames = [field.attname for field in self.fields]

    def read(self, pk: object) -> Run | None:
        db = database()
        with db.cursor() as cursor:
            cursor.execute(self.sql, [self.model._meta.pk.get_db_prep_value(pk, db)])
            row = cursor.fetchone()
        if row is None:
            return None
        values = list(row)
        for index, converters, column in self.converters:
            for convert in converters:
                values[index] = convert(values[index], column, db)
        return self.model.from_db(db.alias, self.attnames, values)


def first_read(read: Callable[[], T]) -> T:
    """`read` (a SELECT: making it twice changes nothing) as the check CONN_HEALTH_CHECKS would
    make with a ping before it, one round trip less on a hot path (a worker's claim, the lean
    submit). When the connection kept from earlier is gone, the read fails instead of the ping,
    and it is made again on a new connection, as the ping would have had it replaced."""
    db = database()
    unchecked = (
        db.connection is not None
        and db.health_check_enabled
        and not db.health_check_done
        and not db.in_atomic_block
    )
    if unchecked:
        db.health_check_done = True  # this read is the check
    try:
        return read()
    except DATABASE_ERRORS:
        if not unchecked:
            raise
        db.close()
        return read()


def write(sql: str, params: list, *, db: BaseDatabaseWrapper | None = None) -> None:
    """A write whose result nobody reads (a history row, a new run's links). In a transaction on
    MariaDB/MySQL it travels with the transaction's next statement or its COMMIT, one round trip
    for both (web/mysql); elsewhere it runs now. `db`: the default database's connection."""
    db = db or database()
    defer = getattr(db, "defer", None)
    if defer is not None:
        defer(sql, params)
        return
    with db.cursor() as cursor:
        cursor.execute(sql, params)


@cache
def reader(model: type[Run]) -> RowReader:
    return RowReader(model)


def read(model: type[R], pk: object) -> R | None:
    """The run `pk` with every field loaded, or None when there is no such row."""
    return reader(model).read(pk)  # type: ignore[return-value]


@cache
def update_sql(model: type[Run], columns: tuple[str, ...], statuses: int, fenced: bool) -> str:
    meta = model._meta
    assignments = ", ".join(f"{quote(column)} = %s" for column in columns)
    allowed = ", ".join(["%s"] * statuses)
    where = f"{quote(meta.pk.column)} = %s AND {column_of(model, 'status')} IN ({allowed})"
    if fenced:
        where += f" AND {column_of(model, 'attempt')} = %s"
    return f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {where}"


def update(
    model: type[Run],
    pk: object,
    values: dict[str, Any],
    *,
    only_from: Collection[str],
    attempt: int | None = None,
) -> int:
    """`UPDATE … SET values WHERE pk AND status IN only_from [AND attempt]`; the rows it changed.

    Plain values only: an expression (`F("attempt") + 1`) goes through the ORM instead."""
    meta = model._meta
    db = database()
    fields = [meta.get_field(name) for name in values]
    columns = tuple(field.column for field in fields)  # type: ignore[union-attr]
    sql = update_sql(model, columns, len(only_from), attempt is not None)
    params = [
        field.get_db_prep_save(value, db)  # type: ignore[union-attr]
        for field, value in zip(fields, values.values(), strict=True)
    ]
    params.append(meta.pk.get_db_prep_value(pk, db))
    params += [str(status) for status in only_from]
    if attempt is not None:
        params.append(attempt)
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount
