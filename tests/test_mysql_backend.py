"""The MariaDB/MySQL backend (web/mysql): a transaction costs no `SET autocommit` round trips, and
is still one transaction: invisible to others until it commits, gone when it rolls back."""

from __future__ import annotations

import MySQLdb
import pytest
from django.contrib.auth.models import Group
from django.db import IntegrityError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        type(connections["default"]).__module__ != "web.mysql.base", reason="web.mysql only"
    ),
]


def commands() -> dict[str, int]:
    """This connection's own count of SET, BEGIN, COMMIT and ROLLBACK statements so far."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SHOW SESSION STATUS WHERE Variable_name IN "
            "('Com_set_option', 'Com_begin', 'Com_commit', 'Com_rollback')"
        )
        return {name.removeprefix("Com_"): int(value) for name, value in cursor.fetchall()}


def sent_during(block) -> dict[str, int]:
    before = commands()
    block()
    after = commands()
    return {name: after[name] - before[name] for name in after}


def others_see(name: str) -> bool:
    """Whether a connection of its own sees the group `name` (what another process would)."""
    settings = connection.settings_dict
    other = MySQLdb.connect(
        host=settings["HOST"] or "127.0.0.1",
        port=int(settings["PORT"] or 3306),
        user=settings["USER"],
        password=settings["PASSWORD"],
        database=settings["NAME"],
    )
    try:
        cursor = other.cursor()
        cursor.execute(f"SELECT 1 FROM {Group._meta.db_table} WHERE name = %s", [name])
        return cursor.fetchone() is not None
    finally:
        other.close()


def test_a_transaction_sends_begin_with_its_first_statement_and_no_set_autocommit():
    connection.ensure_connection()

    def write():
        with transaction.atomic():
            Group.objects.create(name="one")
            Group.objects.create(name="two")

    assert sent_during(write) == {"set_option": 0, "begin": 1, "commit": 1, "rollback": 0}
    assert others_see("one") and others_see("two")


def test_a_transaction_that_sent_nothing_sends_no_commit():
    connection.ensure_connection()

    def nothing():
        with transaction.atomic():
            pass

    assert sent_during(nothing) == {"set_option": 0, "begin": 0, "commit": 0, "rollback": 0}


def test_uncommitted_writes_stay_invisible_until_the_commit():
    with transaction.atomic():
        Group.objects.create(name="pending")
        assert not others_see("pending")  # a BEGIN really opened a transaction
        Group.objects.create(name="pending too")
        assert not others_see("pending")
    assert others_see("pending") and others_see("pending too")


def test_a_failed_block_rolls_back_everything_it_wrote():
    Group.objects.create(name="taken")
    with pytest.raises(IntegrityError), transaction.atomic():
        Group.objects.create(name="fresh")
        Group.objects.create(name="taken")
    assert not others_see("fresh")
    assert list(Group.objects.values_list("name", flat=True)) == ["taken"]


def test_an_error_in_the_first_statement_is_the_usual_integrity_error():
    Group.objects.create(name="taken")

    def clash():
        with pytest.raises(IntegrityError), transaction.atomic():
            Group.objects.create(name="taken")  # the statement sent with BEGIN fails

    assert sent_during(clash)["rollback"] == 1
    Group.objects.create(name="after")  # the connection is in step for the next statement
    assert others_see("after")


def test_savepoints_inside_a_transaction():
    with transaction.atomic():
        with transaction.atomic():  # a savepoint as the first statement
            Group.objects.create(name="kept")
        with pytest.raises(IntegrityError), transaction.atomic():
            Group.objects.create(name="kept")
        Group.objects.create(name="kept too")
    assert others_see("kept") and others_see("kept too")


def test_autocommit_turned_off_by_hand_keeps_its_transactions():
    transaction.set_autocommit(False)
    try:
        Group.objects.create(name="first")
        transaction.commit()
        Group.objects.create(name="second")  # the next transaction, begun by this statement
        assert not others_see("second")
        transaction.rollback()
    finally:
        transaction.set_autocommit(True)
    assert others_see("first") and not others_see("second")


def test_statements_outside_a_transaction_commit_at_once():
    Group.objects.create(name="alone")
    assert others_see("alone")


# Deferred writes: a write whose result nobody reads travels with the next statement.

INSERT_GROUP = f"INSERT INTO {Group._meta.db_table} (name) VALUES (%s)"


def defer(sql: str, params: list | None) -> None:
    connection.defer(sql, params)  # type: ignore[attr-defined]  # web.mysql's own


@pytest.fixture
def round_trips(monkeypatch):
    """`round_trips(block)`: what `block` sent to the server, one entry per round trip."""

    def record(block) -> list[str]:
        sent: list[str] = []
        raw_class = type(connection.connection)
        for name in ("query", "commit", "rollback"):
            method = getattr(raw_class, name)

            def call(raw, *args, name=name, method=method):
                sent.append(args[0].decode() if args else name.upper())
                return method(raw, *args)

            monkeypatch.setattr(raw_class, name, call)
        try:
            block()
        finally:
            monkeypatch.undo()
        return sent

    return record


def names() -> list[str]:
    return sorted(Group.objects.values_list("name", flat=True))


def test_deferred_writes_travel_with_the_next_statement(round_trips):
    connection.ensure_connection()
    seen = []

    def write_then_read():
        with transaction.atomic():
            defer(INSERT_GROUP, ["a"])
            defer(INSERT_GROUP, ["b"])
            seen.append(Group.objects.count())  # sees both

    sent = round_trips(write_then_read)
    assert seen == [2]
    assert len(sent) == 2 and sent[1] == "COMMIT"
    assert sent[0].startswith("BEGIN; INSERT") and sent[0].count("INSERT") == 2
    assert others_see("a") and others_see("b")


def test_deferred_writes_left_at_the_end_go_with_the_commit(round_trips):
    connection.ensure_connection()

    def write():
        with transaction.atomic():
            Group.objects.create(name="first")
            defer(INSERT_GROUP, ["second"])

    sent = round_trips(write)
    assert len(sent) == 2 and sent[1].endswith("; COMMIT") and "second" in sent[1]
    assert others_see("first") and others_see("second")


def test_an_error_in_a_deferred_write_undoes_the_transaction():
    Group.objects.create(name="taken")
    with pytest.raises(IntegrityError), transaction.atomic():
        Group.objects.create(name="fresh")
        defer(INSERT_GROUP, ["taken"])  # raised by the COMMIT it travels with
    assert names() == ["taken"]
    Group.objects.create(name="after")  # the connection is in step
    assert names() == ["after", "taken"]


def test_deferred_writes_of_a_rolled_back_block_are_never_sent(round_trips):
    connection.ensure_connection()

    def abandon():
        with pytest.raises(ZeroDivisionError), transaction.atomic():
            defer(INSERT_GROUP, ["never"])
            raise ZeroDivisionError

    assert round_trips(abandon) == []
    assert names() == []


def test_a_deferred_write_outside_a_transaction_runs_at_once():
    defer(INSERT_GROUP, ["now"])
    assert others_see("now")


def test_deferred_values_keep_their_percent_signs_and_quotes():
    with transaction.atomic():
        defer(INSERT_GROUP, ["100% 'sure'; DROP TABLE x"])
        defer(f"UPDATE {Group._meta.db_table} SET name = CONCAT(name, '%%')", None)
        Group.objects.filter(name__startswith="100%").update(name="%s and %d")
    assert names() == ["%s and %d"]


def test_the_query_log_lists_deferred_writes_in_order():
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        defer(INSERT_GROUP, ["logged"])
        Group.objects.filter(name="logged").exists()
    sql = [query["sql"] for query in queries]
    assert sql[0] == "BEGIN" and sql[-1] == "COMMIT"
    assert sql[1] == f"INSERT INTO {Group._meta.db_table} (name) VALUES ('logged')"
    assert sql[2].startswith("SELECT 1 AS")


def test_executemany_sends_what_is_pending_first():
    with transaction.atomic():
        defer(INSERT_GROUP, ["deferred"])
        with connection.cursor() as cursor:
            cursor.executemany(INSERT_GROUP, [["many 1"], ["many 2"]])
        assert not others_see("deferred") and not others_see("many 1")
        assert names() == ["deferred", "many 1", "many 2"]
    assert others_see("deferred") and others_see("many 2")


def test_an_execute_wrapper_sees_a_deferred_write_as_it_runs():
    connection.ensure_connection()
    seen = []

    def watch(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(watch), transaction.atomic():
        defer(INSERT_GROUP, ["watched"])
        assert seen == [INSERT_GROUP]  # run at once, through the wrapper
        assert names() == ["watched"]
    assert others_see("watched")
