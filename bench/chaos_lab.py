"""The real processes and the database-side records behind bench/chaos.py.

Processes: a Redis and (for the database scenario) a MariaDB of the bench's own on free ports, the
worker and beat started by the project's own `run_celery.py` (detached, pid files and logs under a
LOG_DIR of the bench's own), and gunicorn for the HTTP scenario. `Lab.close` ends every process a
scenario started, by pid, whatever happened.

Records: a trigger on the sleeper run table copies every status (or attempt) change into a log
table, so "entered a terminal state twice" is read from the database, not from logs; Celery's
`task-sent` events give the exact time and sender pid of every maintenance firing, and
django-celery-results' TaskResult rows when it completed.

Everything above `Lab` is usable before Django is set up (the broker and database ports must be
known before the settings are read); the records need Django.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
TERMINAL = ("succeeded", "failed", "cancelled", "timed_out")
ACTIVE = ("pending", "queued", "running", "waiting")
TRANSITION_LOG = "chaos_transition"


# -- Small process helpers -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], object], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def alive(pid: int) -> bool:
    """Whether `pid` runs and is not a zombie (a killed child of ours stays one until reaped)."""
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (ProcessLookupError, FileNotFoundError, IndexError):
        return False
    return state != "Z"


def end_process(pid: int, *, group: bool, grace: float = 10) -> None:
    """TERM, then KILL after `grace` seconds; the whole process group (pgid == pid) when `group`."""
    send = (lambda sig: os.killpg(pid, sig)) if group else (lambda sig: os.kill(pid, sig))
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5)):
        try:
            send(sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + wait
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not alive(pid):
            return


def kill_now(pid: int, *, group: bool) -> bool:
    """SIGKILL, no grace (the fault itself); True if there was something to kill."""
    try:
        (os.killpg if group else os.kill)(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    wait_until(lambda: not alive(pid), timeout=10, what=f"pid {pid} to die")
    return True


class Spawned:
    """A foreground process of ours in a session of its own, its output in a file."""

    def __init__(self, command: list[str], log: Path, *, env: dict | None = None) -> None:
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self.process.pid

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)

    def stop(self, grace: float = 10) -> None:
        if self.process.poll() is None:
            end_process(self.pid, group=True, grace=grace)
        self.process.poll()  # reap


# -- Redis and MariaDB of the bench's own --------------------------------------------------------


class Redis:
    """A redis-server on a free port; no persistence, so a crash loses every queued message."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.server: Spawned | None = None

    def start(self) -> None:
        command = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.folder),
        ]
        self.server = Spawned(command, self.folder / "redis.log")
        wait_until(self.answers, timeout=20, what="redis-server to answer")

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        if self.server:
            kill_now(self.server.pid, group=False)
            self.server.process.wait()

    def stop(self) -> None:
        if self.server:
            self.server.stop()


class MariaDB:
    """A mariadbd of the bench's own: a fresh datadir under `folder`, a free port, a socket."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.datadir = folder / "mariadb"
        self.port = free_port()
        self.server: Spawned | None = None

    def url(self, database: str) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/{database}"

    def install(self) -> None:
        done = subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                *self._user(),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed: {done.stdout[-800:]}{done.stderr}")

    def start(self) -> None:
        command = [
            "mariadbd",
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--socket={self.folder / 'mariadb.sock'}",
            f"--pid-file={self.folder / 'mariadb.pid'}",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=128M",
            "--max-connections=300",
            *self._user(),
        ]
        self.server = Spawned(command, self.folder / "mariadb.log")
        wait_until(self.answers, timeout=60, what="mariadbd to accept connections")

    def answers(self) -> bool:
        import MySQLdb

        try:
            MySQLdb.connect(
                host="127.0.0.1", port=self.port, user="root", connect_timeout=2
            ).close()
        except MySQLdb.OperationalError:
            return False
        return True

    def create_database(self, name: str) -> None:
        import MySQLdb

        conn = MySQLdb.connect(host="127.0.0.1", port=self.port, user="root")
        try:
            conn.cursor().execute(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4")
        finally:
            conn.close()

    def kill(self) -> None:
        if self.server:
            kill_now(self.server.pid, group=False)
            self.server.process.wait()

    def stop(self) -> None:
        if self.server:
            self.server.stop(grace=30)

    @staticmethod
    def _user() -> list[str]:
        return ["--user=root"] if os.geteuid() == 0 else []  # mariadbd refuses root unless told


# -- Worker, beat and web ------------------------------------------------------------------------


class CeleryService:
    """A worker or a beat started by the project's own `run_celery.py VERB`, which detaches it.

    Each instance has a LOG_DIR of its own (pid file, log): `run_celery.py` refuses a second beat
    in one LOG_DIR, and the two-beat scenario needs two.
    """

    def __init__(self, verb: str, log_dir: Path, env: dict[str, str], *args: str) -> None:
        self.verb, self.log_dir, self.args = verb, log_dir, args
        self.env = {**env, "LOG_DIR": str(log_dir)}
        self.pids: list[int] = []  # every pid file's process under log_dir, read at start
        self.killed = False  # by the bench, on purpose (not "exited on its own")

    def start(self) -> float:
        """Start it; return the seconds `run_celery.py` took (a worker: until it answers a ping)."""
        started = time.monotonic()
        done = subprocess.run(
            [PYTHON, "run_celery.py", self.verb, *self.args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        # Exit 1 is "started, but no ping yet" for a worker: still running, so still ours to stop.
        self.pids = self._pids_from_files()
        self.killed = False
        if done.returncode not in (0, 1) or not self.pids:
            raise RuntimeError(
                f"run_celery.py {self.verb} failed ({done.returncode}): {done.stdout}{done.stderr}"
            )
        return time.monotonic() - started

    @property
    def pid(self) -> int:
        """The main process (its pid file is named after the verb)."""
        return int((self.log_dir / f"{self.verb}.pid").read_text()) if self._own_file() else 0

    def _own_file(self) -> bool:
        return (self.log_dir / f"{self.verb}.pid").exists()

    def _pids_from_files(self) -> list[int]:
        """All pid files this verb left (a worker verb may one day start a second consumer)."""
        pids = []
        for path in sorted(self.log_dir.glob(f"{self.verb}*.pid")):
            try:
                pids.append(int(path.read_text().strip()))
            except ValueError:
                continue
        return pids

    def children(self) -> list[int]:
        """The pool children of the main process (prefork: one per concurrency slot)."""
        import psutil

        try:
            return [child.pid for child in psutil.Process(self.pids[0]).children()]
        except (psutil.NoSuchProcess, IndexError):
            return []

    def kill(self) -> None:
        """SIGKILL the main process and its children (the group: run_celery.py starts it in a
        session of its own)."""
        self.killed = True
        for pid in self.pids:
            kill_now(pid, group=True)

    def stop(self) -> None:
        for pid in self.pids:
            if alive(pid):
                end_process(pid, group=True, grace=15)  # TERM is a warm shutdown, then KILL

    def exited(self) -> list[int]:
        """Main processes that are gone although the bench did not kill them."""
        return [] if self.killed else [pid for pid in self.pids if not alive(pid)]

    def log_tail(self, lines: int = 30) -> str:
        path = self.log_dir / f"{self.verb}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


class WebServer:
    """gunicorn on a free port serving the project (as deploy/ runs it in production)."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        command = [
            PYTHON,
            "-m",
            "gunicorn",
            "web.wsgi:application",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            "2",
            "--threads",
            "4",
            "--timeout",
            "120",
        ]
        self.server = Spawned(command, folder / "web.log", env=env)
        wait_until(self._listens, timeout=60, what="gunicorn to listen")

    def _listens(self) -> bool:
        if self.server.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {self.server.log.read_text()[-1500:]}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        self.server.stop()


class Lab:
    """Every process one scenario started; `close` ends them all by pid, even after an error."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.redis = Redis(folder)
        self.mariadb: MariaDB | None = None
        self.services: list[CeleryService] = []
        self.web: WebServer | None = None

    def own_mariadb(self) -> MariaDB:
        self.mariadb = MariaDB(self.folder)
        self.mariadb.install()
        self.mariadb.start()
        return self.mariadb

    def celery(self, verb: str, name: str, *args: str) -> CeleryService:
        """Start `run_celery.py VERB ARGS` in LOG_DIR=<folder>/<name>."""
        service = CeleryService(verb, self.folder / name, dict(os.environ), *args)
        self.services.append(service)
        service.start()
        return service

    def start_web(self) -> WebServer:
        self.web = WebServer(self.folder, dict(os.environ))
        return self.web

    def close(self) -> None:
        steps: list[Callable[[], None]] = []
        if self.web:
            steps.append(self.web.stop)
        steps += [service.stop for service in reversed(self.services)]
        steps.append(self._stop_log_writers)
        steps.append(self.redis.stop)
        if self.mariadb:
            steps.append(self.mariadb.stop)
        for step in steps:
            try:
                step()
            except Exception as exc:  # keep stopping the rest
                print(f"  cleanup: {step.__qualname__} failed: {exc}", flush=True)

    def _stop_log_writers(self) -> None:
        """run_celery.py's log writers (`run_celery.py _log <our folder>/...`) end with their
        service; any left (a service we could not kill) is ended by pid."""
        import psutil

        for process in psutil.process_iter(["pid", "cmdline"]):
            cmdline = process.info["cmdline"] or []
            if "_log" in cmdline and any(str(self.folder) in part for part in cmdline):
                end_process(process.info["pid"], group=False, grace=2)


# -- Database-side records (Django set up) -------------------------------------------------------


def install_transition_log(table: str) -> None:
    """A log table and an AFTER UPDATE trigger on the sleeper run table: one row per status (or
    attempt) change, written in the same transaction as the change, timed by the database (UTC)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS `{TRANSITION_LOG}`")
        cursor.execute(
            f"CREATE TABLE `{TRANSITION_LOG}` (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
            "run_id CHAR(36) NOT NULL, old_status VARCHAR(16), new_status VARCHAR(16) NOT NULL, "
            "attempt SMALLINT UNSIGNED NOT NULL, at DATETIME(6) NOT NULL, KEY (run_id))"
        )
        cursor.execute("DROP TRIGGER IF EXISTS chaos_run_transition")
        # The attempt too: a takeover of a stale run is running -> running with attempt + 1.
        cursor.execute(
            f"CREATE TRIGGER chaos_run_transition AFTER UPDATE ON `{table}` FOR EACH ROW "
            "BEGIN IF OLD.status <> NEW.status OR OLD.attempt <> NEW.attempt THEN "
            f"INSERT INTO `{TRANSITION_LOG}` (run_id, old_status, new_status, attempt, at) "
            "VALUES (NEW.id, OLD.status, NEW.status, NEW.attempt, UTC_TIMESTAMP(6)); "
            "END IF; END"
        )


def query(sql: str, params: tuple = ()) -> list[tuple]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def retrying(work: Callable[[], object], *, timeout: float = 120) -> object:
    """Run a read of the bench's own; while the database is down (scenario e) try again."""
    from django.db import DatabaseError, connection

    deadline = time.monotonic() + timeout
    while True:
        try:
            return work()
        except DatabaseError:
            connection.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def utc(naive: datetime) -> float:
    return naive.replace(tzinfo=UTC).timestamp()


def status_counts(table: str) -> dict[str, int]:
    return dict(query(f"SELECT status, COUNT(*) FROM `{table}` GROUP BY status"))  # type: ignore[arg-type]


def duplicate_effects(effect_table: str) -> int:
    """Runs with more than one SleepEffect row (one row per completed execution of the steps)."""
    sql = (
        f"SELECT COUNT(*) FROM (SELECT run_id FROM `{effect_table}` "
        "GROUP BY run_id HAVING COUNT(*) > 1) d"
    )
    return int(query(sql)[0][0])


def double_terminal() -> int:
    """Runs that entered a terminal state more than once, from the trigger's log."""
    marks = ",".join(["%s"] * len(TERMINAL))
    sql = (
        f"SELECT COUNT(*) FROM (SELECT run_id FROM `{TRANSITION_LOG}` "
        f"WHERE new_status IN ({marks}) GROUP BY run_id HAVING COUNT(*) > 1) d"
    )
    return int(query(sql, TERMINAL)[0][0])


def last_terminal_at() -> float | None:
    marks = ",".join(["%s"] * len(TERMINAL))
    row = query(f"SELECT MAX(at) FROM `{TRANSITION_LOG}` WHERE new_status IN ({marks})", TERMINAL)
    return utc(row[0][0]) if row and row[0][0] else None


@dataclass
class Redo:
    """How long a run whose attempt died waited: from its previous claim (its death is at most one
    run length later) to its next claim and to its terminal state."""

    run_id: str
    reclaimed_after: float | None
    terminal_after: float | None


def redone_runs() -> list[Redo]:
    """Every run claimed more than once (a killed child, a lost worker, a redelivery)."""
    rows = query(f"SELECT run_id, new_status, at FROM `{TRANSITION_LOG}` ORDER BY run_id, at, id")
    by_run: dict[str, list[tuple[str, float]]] = {}
    for run_id, status, at in rows:
        by_run.setdefault(run_id, []).append((status, utc(at)))
    redos = []
    for run_id, moves in by_run.items():
        claims = [at for status, at in moves if status == "running"]
        if len(claims) < 2:
            continue
        ends = [at for status, at in moves if status in TERMINAL]
        for before, after in itertools.pairwise(claims):
            redos.append(Redo(run_id, after - before, None))
        redos[-1].terminal_after = (ends[-1] - claims[-2]) if ends else None
    return redos


def spread(values: list[float]) -> str:
    """'median X s, max Y s (n)' for a report line."""
    if not values:
        return "none"
    return f"median {statistics.median(values):.0f} s, max {max(values):.0f} s (n={len(values)})"


# -- Maintenance firings: Celery's task-sent events + TaskResult ---------------------------------


@dataclass
class Firing:
    task: str
    task_id: str
    sent: float  # the sender's clock (same machine as the bench)
    sender_pid: int
    done: float | None = None  # TaskResult.date_done


class FiringRecorder(threading.Thread):
    """Listens to Celery's `task-sent` events (settings.CELERY_TASK_SEND_SENT_EVENT) and keeps the
    maintenance ones (runs.*): beat publishes them, with its own pid, when it fires a schedule.

    Reconnects when the broker goes away (the broker scenarios), so firings after it are kept.
    """

    def __init__(self) -> None:
        super().__init__(name="firing-recorder", daemon=True)
        self.firings: list[Firing] = []
        self.stopping = False
        self.listening = threading.Event()  # set once subscribed (the first idle iteration)
        self._receiver = None

    def run(self) -> None:
        from celery import current_app

        while not self.stopping:
            try:
                with current_app.connection_for_read() as conn:
                    self._receiver = receiver = current_app.events.Receiver(
                        conn, handlers={"task-sent": self._on_sent}
                    )
                    receiver.on_iteration = self.listening.set
                    for _ in receiver.itercapture(limit=None, timeout=None, wakeup=False):
                        pass
            except Exception:  # the broker went away: listen again once it is back
                self.listening.clear()
                time.sleep(1)

    def _on_sent(self, event: dict) -> None:
        name = event.get("name") or ""
        if name.startswith("runs."):
            self.firings.append(
                Firing(name, event["uuid"], event["timestamp"], event.get("pid", 0))
            )

    def stop(self) -> None:
        self.stopping = True
        if self._receiver is not None:
            self._receiver.should_stop = True  # checked between drains (every second)

    def completed(self) -> list[Firing]:
        """The firings so far, with when each finished (TaskResult.date_done) if it did."""
        from django_celery_results.models import TaskResult

        firings = list(self.firings)
        done = dict(
            TaskResult.objects.filter(task_id__in=[f.task_id for f in firings]).values_list(
                "task_id", "date_done"
            )
        )
        for firing in firings:
            at = done.get(firing.task_id)
            firing.done = at.timestamp() if at else None
        return firings


def lateness(firings: list[Firing], task: str, until: float) -> tuple[float | None, int, int]:
    """(largest lateness in s, firings, not done) of one task: from beat's send (its due time) to
    completion; a firing still not done at `until` counts as late by `until - sent`."""
    mine = [f for f in firings if f.task == task and f.sent <= until]
    if not mine:
        return None, 0, 0
    late = [(f.done if f.done is not None else until) - f.sent for f in mine]
    return max(late), len(mine), sum(f.done is None for f in mine)
