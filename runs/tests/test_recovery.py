"""Recovery from faults, with real processes: a dead worker, a lost message, a database outage,
a superseded attempt. Waits are bounded; nothing here asserts a duration."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace

import pytest
from celery import current_app
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.utils import timezone
from kombu import Connection

from ops.testing import amqp_waiting, broker_of
from runs import lifecycle, maintenance
from runs.broker import held_task_ids
from runs.maintenance import queue_names
from runs.models import RunStatus
from runs.tests.helpers import (
    RedisServer,
    ServiceProcess,
    both_brokers,
    database_url,
    free_port,
    start_worker,
    wait_for,
)
from runs.tests.sleeper.models import SleepEffect, SleepResult, SleepRun
from runs.tests.sleeper.tasks import counter, paid_calls_key

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


def status_of(run) -> str:
    run.refresh_from_db()
    return run.status


def wait_status(run, *statuses, timeout=60):
    wait_for(lambda: status_of(run) in statuses, timeout=timeout, what=f"run to be {statuses}")


def backdate(run, **seconds_ago: float) -> None:
    """Set the run's time fields to that many seconds ago (created_at too, which comes first)."""
    now = timezone.now()
    fields = {name: now - timedelta(seconds=ago) for name, ago in seconds_ago.items()}
    fields["created_at"] = min(fields.values())
    SleepRun.objects.filter(pk=run.pk).update(**fields)


# A dead worker's run


@both_brokers
def test_a_run_whose_worker_died_is_sent_ahead_of_the_backlog(user, broker):
    backlog = [
        SleepRun.objects.create(owner=user, steps=1, seconds_per_step=0.3) for _ in range(60)
    ]
    for run in backlog:
        lifecycle.dispatch(run)
    dead = SleepRun.objects.create(
        owner=user, status=RunStatus.RUNNING, attempt=1, task_id=str(uuid.uuid4())
    )
    backdate(dead, queued_at=120, started_at=120, heartbeat_at=120)

    outcome = maintenance.scan()

    assert outcome["redispatched"] == 1
    wait_status(dead, RunStatus.SUCCEEDED)
    waiting = SleepRun.objects.filter(pk__in=[r.pk for r in backlog], status=RunStatus.QUEUED)
    # 60 runs of 0.3 s on two processes take 9 s; the rescued run went ahead of most of them.
    assert waiting.count() >= 30
    assert dead.attempt == 2
    assert SleepEffect.objects.filter(run=dead).count() == 1
    wait_for(lambda: not SleepRun.objects.filter(status=RunStatus.QUEUED).exists(), timeout=60)


def node_names(worker) -> list[str]:
    return re.findall(r"(\S+@\S+) ready\.", worker.log())


@contextlib.contextmanager
def not_consuming(worker, queue: str) -> Iterator[None]:
    """The worker's nodes leave `queue` to others for the block, then take it up again."""
    nodes = node_names(worker)
    current_app.control.cancel_consumer(queue, destination=nodes, reply=True, timeout=5)
    try:
        yield
    finally:
        current_app.control.add_consumer(queue, destination=nodes, reply=True, timeout=5)


def kill(worker: ServiceProcess) -> None:
    """SIGKILL the whole worker, main process and children: a machine lost, not a child."""
    os.killpg(worker.process.pid, signal.SIGKILL)
    worker.process.wait(timeout=10)


@both_brokers
def test_a_run_whose_whole_worker_was_killed_runs_again(user, broker):
    """RabbitMQ hands a dead connection's unacknowledged message to another worker at once, so
    the run goes on under the same task id without the scan. Redis would wait out its
    visibility timeout (an hour): the scan sees the heartbeat stop and sends the run again."""
    doomed = broker.start_worker(concurrency=1)
    try:
        run = SleepRun.objects.create(owner=user, steps=6, seconds_per_step=0.5)
        with not_consuming(broker.worker, "celery"):  # the doomed worker takes the run
            lifecycle.dispatch(run)
            wait_for(lambda: SleepRun.objects.get(pk=run.pk).progress > 0, what="progress")
        first_task_id = SleepRun.objects.get(pk=run.pk).task_id
        kill(doomed)

        if broker.kind == "redis":
            wait_for(lambda: maintenance.scan()["redispatched"], timeout=30, what="a rescue")
        wait_status(run, RunStatus.SUCCEEDED)
    finally:
        doomed.stop()

    assert run.attempt == 2
    assert (run.task_id == first_task_id) == (broker.kind == "amqp")
    assert list(SleepEffect.objects.filter(run=run).values_list("attempt", flat=True)) == [2]
    assert f"Task {SleepRun.task_name}[{first_task_id}] received" in doomed.log()


# A lost message


@both_brokers
def test_a_queued_run_whose_message_is_gone_is_sent_again_at_the_next_scan(user, broker):
    lost = SleepRun.objects.create(owner=user, status=RunStatus.QUEUED, task_id="purged-message")
    backdate(lost, queued_at=30)

    outcome = maintenance.scan()  # the seeded kwargs: no hour-long threshold is involved

    assert outcome["requeued"] == 1
    wait_status(lost, RunStatus.SUCCEEDED)
    assert lost.task_id != "purged-message"
    assert SleepEffect.objects.filter(run=lost).count() == 1


@both_brokers
def test_a_queued_run_whose_message_is_still_held_is_left_alone(user, broker):
    # A countdown keeps the message with the worker, unacknowledged, like a retry's backoff.
    key = f"recovery-test-{uuid.uuid4()}"
    held = current_app.send_task("sleeper.noop", args=[key], countdown=8)
    run = SleepRun.objects.create(owner=user, status=RunStatus.QUEUED, task_id=held.id)
    backdate(run, queued_at=30)
    try:
        wait_for(
            lambda: held.id in (held_task_ids(queue_names(), recent_seconds=20) or ()),
            timeout=15,
            what="the worker to hold the countdown message",
        )
        assert maintenance.scan()["requeued"] == 0
        assert status_of(run) == RunStatus.QUEUED and run.task_id == held.id
    finally:
        SleepRun.objects.filter(pk=run.pk).update(status=RunStatus.CANCELLED)
        wait_for(lambda: counter().get(key), timeout=30, what="the countdown task to run")


def test_the_broker_tells_which_messages_wait_in_a_queue(user):
    # Published to a queue nobody consumes: it waits there, as a backlog would.
    waiting = current_app.send_task("sleeper.noop", args=["x"], queue="nobody")
    try:
        held = held_task_ids(["nobody"], recent_seconds=20)
        assert held is not None and waiting.id in held
        assert str(uuid.uuid4()) not in held
    finally:
        with Connection(current_app.conf.broker_url) as conn:
            conn.default_channel.queue_purge("nobody")


def test_rabbitmq_cannot_be_read_so_a_waiting_message_means_it_cannot_tell(amqp_url):
    """RabbitMQ shows a queue's messages only to whoever takes them: with one waiting, the scan
    is told nothing (None) and falls back to its age threshold; with none, a set to compare."""
    with broker_of(amqp_url):
        assert held_task_ids(["nobody"], recent_seconds=20) == set()  # never declared: empty
        current_app.send_task("sleeper.noop", args=["x"], queue="nobody")
        try:
            assert amqp_waiting(amqp_url, "nobody") == 1  # it went through RabbitMQ
            assert held_task_ids(["nobody"], recent_seconds=20) is None
        finally:
            with Connection(amqp_url) as conn:
                conn.default_channel.queue_delete("nobody")


# A database outage


class TcpProxy:
    """A TCP relay to the database that the test can cut, as a network or server fault would."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.port = free_port()
        self.open = threading.Event()
        self.open.set()
        self.links: list[socket.socket] = []
        self.server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if not self.open.is_set():
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            self.links += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self.pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Refuse new connections and drop every open one."""
        self.open.clear()
        for link in self.links:
            with contextlib.suppress(OSError):
                link.shutdown(socket.SHUT_RDWR)
        self.links.clear()

    def restore(self) -> None:
        self.open.set()

    def close(self) -> None:
        self.cut()
        self.server.close()


@pytest.fixture
def outage_worker():
    """A worker of its own, on a broker of its own, that reaches the database through a proxy."""
    settings = connection.settings_dict
    if "mysql" not in settings["ENGINE"]:
        pytest.skip("the proxy relays a MySQL/MariaDB connection")
    proxy = TcpProxy(settings["HOST"] or "127.0.0.1", int(settings["PORT"] or 3306))
    redis = RedisServer().start()
    url = database_url().replace(f":{settings['PORT'] or 3306}/", f":{proxy.port}/")
    worker = start_worker(redis.url, concurrency=1, DATABASE_URL=url)
    yield proxy, redis, worker
    worker.stop()
    redis.stop()
    proxy.close()


def test_a_database_outage_during_the_claim_keeps_the_message(user, outage_worker):
    proxy, redis, worker = outage_worker
    run = SleepRun.objects.create(owner=user, status=RunStatus.QUEUED, task_id=str(uuid.uuid4()))
    proxy.cut()
    # The app's own connection settings (priority lists, key separator), on the test's broker.
    with current_app.connection_for_write(redis.url) as conn:
        current_app.send_task(
            run.task_name, args=[str(run.pk)], task_id=run.task_id, connection=conn
        )
    try:
        wait_for(lambda: "sent again in" in worker.log(), timeout=30, what="the claim to fail")
    except AssertionError as missed:
        raise AssertionError(f"{missed}; the worker said:\n{worker.log()[-3000:]}") from None
    assert status_of(run) == RunStatus.QUEUED  # not acknowledged into a stuck run

    proxy.restore()

    wait_status(run, RunStatus.SUCCEEDED)
    assert run.attempt == 1
    assert SleepEffect.objects.filter(run=run).count() == 1


def test_a_connection_dropped_between_deliveries_is_replaced_at_the_claim(user, outage_worker):
    """No health-check ping before each task: the claim's first read finds the dead connection
    and reads again on a new one, so the delivery neither fails nor waits for a retry."""
    proxy, redis, worker = outage_worker

    def deliver(run: SleepRun) -> None:
        with current_app.connection_for_write(redis.url) as conn:
            current_app.send_task(
                run.task_name, args=[str(run.pk)], task_id=run.task_id, connection=conn
            )

    first, second = (
        SleepRun.objects.create(owner=user, status=RunStatus.QUEUED, task_id=str(uuid.uuid4()))
        for _ in range(2)
    )
    deliver(first)
    wait_status(first, RunStatus.SUCCEEDED)  # the worker's one child now holds a connection
    proxy.cut()  # the server's side of it goes away, as after a restart
    proxy.restore()

    deliver(second)
    wait_status(second, RunStatus.SUCCEEDED)
    assert second.attempt == 1
    assert "sent again in" not in worker.log()


def kill_connection_of_this_process() -> None:
    """End this process's database connection on the server, as a server restart would."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT CONNECTION_ID()")
        (own_id,) = cursor.fetchone()
    settings = connection.settings_dict
    killer = connection.Database.connect(
        host=settings["HOST"] or "127.0.0.1",
        port=int(settings["PORT"] or 3306),
        user=settings["USER"],
        password=settings["PASSWORD"],
    )
    try:
        killer.cursor().execute(f"KILL CONNECTION {int(own_id)}")
    finally:
        killer.close()


class OneDelivery:
    """What `claim_for` asks of a task: its retry would mean the delivery was sent round again."""

    request = SimpleNamespace(retries=0)

    def retry(self, **options):
        raise AssertionError(f"the delivery was sent round again: {options}")


def test_the_claim_pings_nothing_and_reads_again_on_a_fresh_connection(user, monkeypatch):
    if connection.vendor != "mysql":
        pytest.skip("kills a MySQL/MariaDB connection")
    run = SleepRun.objects.create(owner=user, status=RunStatus.QUEUED, task_id=str(uuid.uuid4()))
    pings: list[object] = []
    wrapper = type(connections[DEFAULT_DB_ALIAS])
    monkeypatch.setattr(wrapper, "is_usable", lambda self: pings.append(self) or True)
    kill_connection_of_this_process()

    claimed = lifecycle.claim_for(OneDelivery(), SleepRun, str(run.pk))

    assert claimed is not None and claimed.attempt == 1
    assert status_of(run) == RunStatus.RUNNING
    assert pings == []
    SleepRun.objects.filter(pk=run.pk).update(status=RunStatus.CANCELLED)


# The end is atomic


def test_an_attempt_taken_over_before_its_end_keeps_no_result(user, celery_worker):
    run = SleepRun.objects.create(owner=user, steps=1, seconds_per_step=3)
    lifecycle.dispatch(run)
    wait_for(lambda: status_of(run) == RunStatus.RUNNING and run.attempt == 1, timeout=30)

    # Another attempt takes the run over while the first is between its last step and its end.
    SleepRun.objects.filter(pk=run.pk).update(attempt=2, heartbeat_at=timezone.now())
    wait_for(
        lambda: f"run {run.pk} was taken over" in celery_worker.log(),
        timeout=30,
        what="the end to be fenced",
    )

    assert not SleepEffect.objects.filter(run=run).exists()
    assert not SleepResult.objects.filter(run=run).exists()
    assert status_of(run) == RunStatus.RUNNING  # left to attempt 2 (here, to the stale check)
    SleepRun.objects.filter(pk=run.pk).update(status=RunStatus.CANCELLED)


# Checkpoints


def test_a_checkpointed_call_is_not_repeated_by_the_next_attempt(user):
    run = SleepRun.objects.create(owner=user, fail_with="transient")  # attempt 1 fails after it
    lifecycle.dispatch(run)

    wait_status(run, RunStatus.SUCCEEDED)

    assert run.attempt == 2
    assert int(counter().get(paid_calls_key(run.pk)) or 0) == 1
    assert run.checkpoints == {"paid call": {"attempt": 1}}
    assert list(SleepEffect.objects.filter(run=run).values_list("attempt", flat=True)) == [2]


def test_a_submit_whose_process_died_before_the_send_is_sent_at_the_next_scan(user, api):
    """The API inserts runs already queued and sends after commit; a web process that dies
    between the two leaves a queued run with no message, which the scan finds like a lost one."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lifecycle.transaction, "on_commit", lambda callback, **kwargs: None)
        reply = api.post("/api/test/sleep-runs/", {"steps": 1}, format="json")
    assert reply.status_code == 202, reply.json()
    run = SleepRun.objects.get(pk=reply.json()["id"])
    assert run.status == RunStatus.QUEUED
    assert run.task_id not in (held_task_ids(queue_names(), recent_seconds=60) or ())
    backdate(run, queued_at=30)

    assert maintenance.scan()["requeued"] == 1
    wait_status(run, RunStatus.SUCCEEDED)
