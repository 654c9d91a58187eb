"""Django's MariaDB/MySQL backend, with fewer round trips per transaction.

Django's own backend opens an `atomic()` block with `SET autocommit=0` and closes it with
`SET autocommit=1` after the COMMIT: two round trips that carry no data, on every submit, claim
and transition. Here the server stays in autocommit mode, and a transaction's `BEGIN` travels in
the same packet as its first statement (mysqlclient sends several statements in one query).

A write whose result nobody reads (a history row, a run's links) can be handed to `defer`
inside a transaction: it travels with the transaction's next statement, or with its COMMIT. The
statements run in the order they were given, so a later read sees the deferred writes, and an
error in one is raised by the statement it travelled with, inside the same transaction.

To Django the connection behaves as before: `get_autocommit()`, `atomic()`, savepoints,
`select_for_update`, `on_commit` hooks and the query log see the same states, in the same order.
A transaction that sent nothing sends no COMMIT either.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

from django.db import IntegrityError
from django.db.backends.mysql import base, operations
from django.db.backends.utils import debug_transaction
from django.utils.encoding import force_str
from MySQLdb import OperationalError

BEGIN, COMMIT, SEPARATOR = b"BEGIN", "COMMIT", b"; "


class DatabaseOperations(operations.DatabaseOperations):
    def last_executed_query(self, cursor, sql, params):
        # The statement itself, not what travelled before it: those have a line of their own in
        # the query log (the BEGIN logged by Django, deferred writes by `defer`).
        executed = getattr(cursor, "_executed", None) or b""
        return force_str(executed[getattr(cursor, "prefix_length", 0) :], errors="replace")


class CursorWrapper(base.CursorWrapper):
    """Sends what the transaction has pending (its BEGIN, deferred writes) ahead of a statement,
    in the same packet, and leaves the cursor on the statement's own result."""

    def __init__(self, cursor, database: DatabaseWrapper):
        super().__init__(cursor)
        self.database = database
        self.prefix_length = 0

    def execute(self, query, args=None):
        pending = self.database.take_pending()
        self.prefix_length = 0
        if not pending:
            return super().execute(query, args)
        prefix = b"".join(statement + SEPARATOR for statement in pending)
        self.prefix_length = len(prefix)
        if args is not None:  # the bound statements' own `%` are not placeholders
            prefix = prefix.replace(b"%", b"%%")
        if isinstance(query, str):
            query = query.encode(self.database.connection.encoding)
        with integrity_errors():
            self.cursor.execute(prefix + query, args)
            for _ in pending:
                self.cursor.nextset()  # the next statement's result, or its error
        return self.cursor.rowcount

    def executemany(self, query, args):
        self.prefix_length = 0
        if pending := self.database.take_pending():
            with integrity_errors():
                self.cursor.execute(SEPARATOR.join(pending))
                for _ in pending[1:]:
                    self.cursor.nextset()
        return super().executemany(query, args)


@contextmanager
def integrity_errors():
    """As Django's cursor does: the error codes MySQL misfiles as operational, as integrity."""
    try:
        yield
    except OperationalError as error:
        if error.args[0] in base.CursorWrapper.codes_for_integrityerror:
            raise IntegrityError(*error.args) from error
        raise


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.forget_transaction()

    def forget_transaction(self) -> None:
        self.begin_pending = False  # a transaction has begun for Django, not yet on the server
        self.in_server_transaction = False  # a BEGIN went out, its COMMIT or ROLLBACK has not
        self.deferred: list[bytes] = []  # writes bound and waiting for the next statement

    def get_connection_params(self):
        # The server's autocommit is on for the connection's whole life (mysqlclient's default
        # would turn it off).
        return {**super().get_connection_params(), "autocommit": True}

    def get_new_connection(self, conn_params):
        self.forget_transaction()
        return super().get_new_connection(conn_params)

    def create_cursor(self, name=None):
        return CursorWrapper(self.connection.cursor(), self)

    def _set_autocommit(self, autocommit: bool) -> None:
        # Django turns autocommit on again only after the COMMIT or ROLLBACK: nothing to send.
        self.begin_pending = not autocommit

    def defer(self, sql: str, params: Sequence | None) -> None:
        """Run the write `sql` with the transaction's next statement (or its COMMIT); at once
        outside a transaction, or while an execute wrapper watches the statements (it sees each
        one, as it expects). Its result (rows changed, last id) is not known to the caller."""
        if self.get_autocommit() or self.execute_wrappers:
            with self.cursor() as cursor:
                cursor.execute(sql, params)
            return
        statement = sql.encode(self.connection.encoding)
        if params is not None:
            statement %= tuple(self.connection.literal(value) for value in params)
        self.deferred.append(statement)
        if self.queries_logged:
            self.queries_log.append({"sql": force_str(statement), "time": "0.000"})

    def take_pending(self) -> list[bytes]:
        """What must go ahead of the next statement, which is sent now."""
        pending = [BEGIN] if self.begin_pending else []
        pending += self.deferred
        if self.begin_pending:
            self.begin_pending = False
            self.in_server_transaction = True
        self.deferred = []
        return pending

    def _commit(self):
        if self.deferred:  # they go with the COMMIT (and with the BEGIN, if nothing went yet)
            with debug_transaction(self, COMMIT), self.wrap_database_errors:
                cursor = self.create_cursor()
                try:
                    cursor.execute(COMMIT)
                finally:
                    cursor.close()
        elif self.in_server_transaction:
            super()._commit()  # type: ignore[misc]  # the stubs leave it out
        self.transaction_ended()

    def _rollback(self):
        self.deferred = []  # never sent: nothing of theirs to undo
        if self.in_server_transaction:
            super()._rollback()  # type: ignore[misc]
        self.transaction_ended()

    def transaction_ended(self) -> None:
        self.in_server_transaction = False
        # With autocommit off outside `atomic()` (`set_autocommit(False)` by hand), the next
        # statement starts the next transaction, as the server would in that mode.
        self.begin_pending = not self.autocommit
