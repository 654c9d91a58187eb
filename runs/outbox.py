"""The outbox relay: runs the broker refused, or lost, sent again in batches.

The Run row is the outbox. `runs.lifecycle.dispatch` sends one run after commit; what the broker
refused stays `pending`, and the scan (or `manage.py dispatch_pending`) relays it here: claim a
batch with SKIP LOCKED, mark it `queued` with fresh task ids in one UPDATE, commit, then send.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from datetime import timedelta
from functools import cache

from celery import current_app
from celery.events import Event, get_exchange
from celery.utils.time import utcoffset
from django.db import connection, transaction
from django.db.models import CharField, Expression, QuerySet
from django.utils import timezone
from kombu import Exchange
from kombu.exceptions import KombuError

from . import signals
from .models import Priority, Run, RunStatus, run_models
from .routing import RUN_PRIORITY_LEVELS, broker_priority

logger = logging.getLogger(__name__)

# What a `run_changed` receiver is told about each run (runs.signals.RunChange).
CHANGE_FIELDS = ("pk", "owner_id", "status", "attempt", "progress", "stage", "message")


def message_priority(priority: str) -> int:
    """A run's priority as Celery message priority, in the order of the broker it goes to."""
    return broker_priority(RUN_PRIORITY_LEVELS.get(priority, RUN_PRIORITY_LEVELS[Priority.NORMAL]))


BATCH = 500  # rows per relay or maintenance pass: bounded work and short locks


def kinds_with(
    rows: Callable[[type[Run]], QuerySet], kinds: list[type[Run]] | None = None
) -> list[type[Run]]:
    """The run kinds that have a row in `rows(kind)`: plain reads, one round trip for all kinds,
    so a maintenance step opens a transaction (and takes locks) only where there is work."""
    kinds = run_models() if kinds is None else kinds
    found = have_rows([rows(kind) for kind in kinds])
    return [kind for kind, has_rows in zip(kinds, found, strict=True) if has_rows]


def have_rows(querysets: Sequence[QuerySet]) -> list[bool]:
    """Whether each queryset has a row, in one `SELECT EXISTS(…), EXISTS(…), …`."""
    if not querysets:
        return []
    tests: list[str] = []
    params: list = []
    for queryset in querysets:
        sql, args = queryset.order_by().values("pk")[:1].query.sql_with_params()
        tests.append(f"EXISTS ({sql})")
        params += args
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(tests)}", params)
        found = cursor.fetchone()
    return [bool(has_rows) for has_rows in found]


def lock_batch(queryset: QuerySet, limit: int = BATCH) -> list[Run]:
    """Claim rows until commit; a concurrent pass skips them (SKIP LOCKED) instead of waiting."""
    return list(queryset.select_for_update(skip_locked=True).order_by()[:limit])


class ByPk(Expression):
    """`CASE id WHEN <pk> THEN <value> ... END`: one value per row in one UPDATE. Django's
    `Case(When(pk=...))` says the same but builds a lookup per row, a few hundred µs each."""

    output_field = CharField()

    def __init__(self, model: type[Run], values: dict) -> None:
        super().__init__()
        self.pk_field = model._meta.pk
        self.values = values

    def as_sql(self, compiler, connection):
        column = compiler.quote_name_unless_alias(self.pk_field.column)
        params: list = []
        for pk, value in self.values.items():
            params += [self.pk_field.get_db_prep_value(pk, connection), value]
        whens = " ".join(["WHEN %s THEN %s"] * len(self.values))
        return f"CASE {column} {whens} END", params


def mark_queued(
    model: type[Run], runs: list[Run], *, message: str | None = None, reason: str = "dispatched"
) -> dict:
    """Mark runs this transaction holds locked `queued` with fresh task ids, in one UPDATE.

    `dispatch`'s protocol, set-based: send with `send_marked` once the transaction commits.
    """
    task_ids = {run.pk: str(uuid.uuid4()) for run in runs}
    if task_ids:
        fields = {"message": message} if message is not None else {}
        model.objects.filter(pk__in=task_ids).update(
            status=RunStatus.QUEUED,
            queued_at=timezone.now(),
            task_id=ByPk(model, task_ids),
            **fields,
        )
        signals.changed(model, runs, RunStatus.QUEUED, reason=reason, **fields)
    return task_ids


def send_marked(model: type[Run], runs: list[Run], task_ids: dict, *, urgent: bool = False) -> int:
    """Send the marked runs' tasks through one producer; returns how many went.

    On Redis the messages (and one message carrying their task-sent events) go in one pipeline
    when the batch ends, one round trip instead of two per run. If the broker refuses, the runs
    not known to be sent go back to `pending` at once, so an outage costs one connection
    timeout, not one per run; a message that did arrive finds its run pending and claims it all
    the same (`CLAIMABLE`).

    `urgent` sends at the highest priority, ahead of any backlog: for runs rescued from a dead
    worker or a lost message, which have waited their turn once already.
    """
    if not runs:
        return 0
    sent = 0
    batched = False
    try:
        with current_app.producer_or_acquire() as producer:
            # One run (the API's submit) goes straight out: a batch costs a Redis client of its own.
            batched = producer.supports_batch_publish and len(runs) > 1
            # Room for every message and the events: one flush, at the end of the batch. As in
            # send_task, the broker client's own errors are raised as kombu's.
            with (
                producer.connection._reraise_as_library_errors(),
                producer.batch(max_size=4 * len(runs)) if batched else nullcontext(),
            ):
                sender = TaskSender(producer, batched=batched)
                for run in runs:
                    sender.send(run, task_ids[run.pk], urgent=urgent)
                    sent += 1
                sender.send_events()
    except (KombuError, OSError) as exc:  # OperationalError, BatchPublishError (uncertain)
        unsent = runs if batched else runs[sent:]  # a failed pipeline may have sent any of them
        return_to_pending(model, [task_ids[run.pk] for run in unsent], exc)
        return 0 if batched else sent
    return sent


def destination(route: dict) -> dict:
    """Where `send_task_message` publishes a routed message, as its task-sent event names it: a
    direct exchange without a routing key becomes the anonymous exchange and the queue's name."""
    queue = route.get("queue") or current_app.amqp.default_queue  # send_task_message's default
    if isinstance(queue, str):
        queue = current_app.amqp.queues[queue]
    name = queue.name
    exchange, routing_key = route.get("exchange"), route.get("routing_key")
    exchange_type = route.get("exchange_type") or getattr(queue.exchange, "type", "direct")
    if (not exchange or not routing_key) and exchange_type == "direct":
        exchange, routing_key = "", name
    elif exchange is None:
        exchange = queue.exchange.name or current_app.amqp.default_exchange.name
        routing_key = routing_key or queue.routing_key or current_app.conf.task_default_routing_key
    exchange = getattr(exchange, "name", exchange)
    return {"queue": name, "exchange": exchange, "routing_key": routing_key}


class TaskSender:
    """The messages `app.send_task` would publish, for many runs through one producer.

    Per message, `send_task` looks the task up, works out its options and route, builds a result
    object and publishes a task-sent event of its own: about 0.2 ms of CPU. Here the options and
    the route are worked out once per task name (the routes depend on the name only:
    `runs.routing.route_task`), a batch declares its queue once, and the task-sent events go out
    together after the messages, as one message holding the list (the form Celery's workers use
    for their buffered events, which every event receiver, Flower included, reads).
    """

    def __init__(self, producer, *, batched: bool = False) -> None:
        self.app = current_app
        self.producer = producer
        # In a batch (a Redis pipeline) the queue is declared once; a message sent on its own
        # keeps kombu's check per message, which declares again on a connection it revived.
        self.batched = batched
        self.options: dict[str, tuple[dict, dict]] = {}
        self.events = self.app.conf.task_send_sent_event
        self.sent_events: list[dict] = []
        # Sent from a task (the scan under a worker), the messages name it as send_task does.
        self.parent = self.app.current_worker_task

    def send(self, run: Run, task_id: str, *, urgent: bool) -> None:
        message_options, route = self.options_for(run.task_name)
        args = [str(run.pk)]
        parent = self.parent
        message = self.app.amqp.create_task_message(
            task_id,
            run.task_name,
            args,
            {},
            reply_to=self.app.thread_oid,
            create_sent_event=self.events,
            root_id=parent and (parent.request.root_id or parent.request.id),
            parent_id=parent and parent.request.id,
            # What Celery would write (saferepr of a list of one id), without its ~0.05 ms.
            argsrepr=repr(args),
            kwargsrepr="{}",
            **message_options,
        )
        sent_event = message.sent_event
        if not message_options["ignore_result"]:
            self.app.backend.on_task_call(self.producer, task_id)
        priority = Priority.HIGH if urgent else run.priority
        self.app.amqp.send_task_message(
            self.producer,
            run.task_name,
            message._replace(sent_event=None),  # sent below, with the others
            **route,
            priority=message_priority(priority),
            argsrepr=message.headers["argsrepr"],  # send_task copies these into the properties
            kwargsrepr="{}",
        )
        if sent_event is not None:
            self.sent_events.append(self.event(sent_event, route))
        if parent:
            parent.add_trail(self.app.AsyncResult(task_id))

    def options_for(self, name: str) -> tuple[dict, dict]:
        """The message's options and route (`task_options`); in a batch, the queue declared
        once, here."""
        if name not in self.options:
            message_options, route = task_options(self.app, name)
            queue = route.get("queue")
            if self.batched and queue is not None and not isinstance(queue, str):
                self.producer.maybe_declare(queue)
                route = {**route, "declare": []}
            self.options[name] = (message_options, route)
        return self.options[name]

    def event(self, fields: dict, route: dict) -> dict:
        """A task-sent event as Celery's event dispatcher would build it."""
        dispatcher = self.app.amqp._event_dispatcher
        fields.update(destination(route))
        return Event(
            "task-sent",
            hostname=dispatcher.hostname,
            utcoffset=utcoffset(),
            pid=dispatcher.pid,
            clock=self.app.clock.forward(),
            **fields,
        )

    def send_events(self) -> None:
        """Publish the batch's task-sent events, best effort as Celery's dispatcher does (a
        message already sent stays sent): to the event exchange of the broker this producer
        talks to (topic on RabbitMQ, fanout on Redis)."""
        if not self.sent_events:
            return
        exchange = event_exchange(self.app, self.producer.connection)
        try:
            self.producer.publish(
                self.sent_events,
                routing_key="task.multi",
                exchange=exchange.name,
                declare=[exchange],
                **event_publishing(self.app),
            )
        except Exception as exc:
            if self.batched:  # a failed flush: the messages' fate is uncertain too
                raise
            logger.warning("%s task-sent event(s) not published: %s", len(self.sent_events), exc)


@cache
def task_options(app, name: str) -> tuple[dict, dict]:
    """What send_task derives from the registered task and the routes, once per task name (the
    routes depend on the name only: `runs.routing.route_task`): the message's time limits,
    expiry and result flag, and where it goes. Callers copy them, never change them."""
    task = app.tasks.get(name)
    options = {}
    if task is not None:
        options = {k: v for k, v in task._get_exec_options().items() if v is not None}
    message_options = {
        key: options.pop(key, None)
        for key in ("time_limit", "soft_time_limit", "expires", "ignore_result")
    }
    if isinstance(message_options["expires"], int | float):
        options["expiration"] = message_options["expires"]  # the broker's TTL too
    route = app.amqp.router.route(options, name, None, None, task)
    route.pop("priority", None)  # each run's own, per message
    return message_options, route


# Each read of Celery's configuration costs some 20 µs, and a submit sends one run: what the
# task-sent events need is read once per app (and per kind of broker for the exchange).
@cache
def event_publishing(app) -> dict:
    """How Celery's event dispatcher publishes."""
    dispatcher = app.amqp._event_dispatcher
    return {
        "serializer": dispatcher.serializer,
        "headers": dispatcher.headers,
        "delivery_mode": dispatcher.delivery_mode,
        "retry": app.conf.task_publish_retry,
        "retry_policy": app.conf.task_publish_retry_policy,
    }


_event_exchanges: dict[tuple, Exchange] = {}


def event_exchange(app, broker) -> Exchange:
    """The event exchange on `broker`'s kind of transport (topic on RabbitMQ, fanout on Redis)."""
    key = (app, broker.transport.driver_type)
    if key not in _event_exchanges:
        _event_exchanges[key] = get_exchange(broker, name=app.conf.event_exchange)
    return _event_exchanges[key]


def return_to_pending(model: type[Run], task_ids: list[str], exc: Exception) -> None:
    """Runs still `queued` under these task ids go back to `pending` for the next relay."""
    back = model.objects.filter(status=RunStatus.QUEUED, task_id__in=task_ids)
    returned = list(back.only(*CHANGE_FIELDS))
    if back.filter(pk__in=[r.pk for r in returned]).update(status=RunStatus.PENDING):
        signals.changed(model, returned, RunStatus.PENDING, reason="the broker refused it")
    logger.warning("%s run(s) stay pending, the broker refused them: %s", len(task_ids), exc)


def requeue_after_commit(
    model: type[Run],
    runs: list[Run],
    *,
    message: str | None = None,
    urgent: bool = False,
    reason: str = "dispatched",
) -> None:
    """Mark locked runs queued now and send them once the surrounding transaction commits."""
    task_ids = mark_queued(model, runs, message=message, reason=reason)
    if task_ids:
        transaction.on_commit(lambda: send_marked(model, runs, task_ids, urgent=urgent))


def pending_since(model: type[Run], cutoff) -> QuerySet:
    return model.objects.filter(status=RunStatus.PENDING, created_at__lte=cutoff)


def relay_pending(*, older_than_seconds: float = 0) -> int:
    """Dispatch runs left `pending` (the broker was down at submit); returns how many went.

    Of two relays running at once, each claims different rows, so no run is sent twice.
    """
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    sent = 0
    for model in kinds_with(lambda kind: pending_since(kind, cutoff)):
        pending = pending_since(model, cutoff)
        with transaction.atomic():
            runs = lock_batch(pending)
            task_ids = mark_queued(model, runs)
        sent += send_marked(model, runs, task_ids)
    return sent
