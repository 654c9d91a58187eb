"""Abuse limits (issue 11, point 4): throttles on submits and on the token endpoint, a cap on a
user's active runs, and a login lockout, all counted in Redis and answering 429 with Retry-After.

The suite's defaults (pyproject.toml) are high; each test here tightens the one it checks and
counts under a key prefix of its own, in the suite's Redis."""

from __future__ import annotations

import threading
import uuid

import pytest
import redis
from django.conf import settings as django_settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from runs.models import RunStatus
from runs.tests.helpers import wait_for
from runs.tests.sleeper.models import SleepRun
from video.models import VideoRun
from web import settings as project_settings

pytestmark = pytest.mark.django_db

VIDEO = {"title": "Dawn", "prompt": "A keeper lights the lamp.", "characters": [{"name": "Ada"}]}
PASSWORD = "a-right-password-9"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Before any user is made: the production hasher would take most of these tests' time."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def shared_cache(settings):
    """Django's Redis cache on the suite's Redis, under a prefix of this test's own."""
    prefix = f"test-limits-{uuid.uuid4().hex}"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": settings.CELERY_BROKER_URL,
            "KEY_PREFIX": prefix,
        }
    }
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    yield client, prefix
    keys = client.keys(f"{prefix}:*")
    if keys:
        client.delete(*keys)


def too_many(reply) -> dict:
    assert reply.status_code == 429, (reply.status_code, reply.content[:300])
    assert reply["Content-Type"].startswith("application/json")
    assert int(reply["Retry-After"]) >= 1
    body = reply.json()
    assert body["retry_after"] == int(reply["Retry-After"])
    return body


def staff_client(django_user_model, name: str = "carol") -> APIClient:
    staff = django_user_model.objects.create_user(name, password=PASSWORD, is_staff=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=staff).key}")
    return client


# Where the counts live


def test_the_default_cache_is_redis_on_the_brokers_server_next_database():
    assert isinstance(caches["default"], RedisCache)
    broker_db = int(django_settings.CELERY_BROKER_URL.rsplit("/", 1)[1])
    assert django_settings.CACHE_URL.endswith(f"/{(broker_db + 1) % 16}")


def test_limit_settings_are_parsed_strictly(monkeypatch):
    monkeypatch.setenv("THROTTLE_SUBMIT_RATE", "5/hours")
    assert project_settings.env_rate("THROTTLE_SUBMIT_RATE", "20/minute") == "5/hours"
    monkeypatch.setenv("THROTTLE_SUBMIT_RATE", "off")
    assert project_settings.env_rate("THROTTLE_SUBMIT_RATE", "20/minute") is None
    for bad in ("20", "0/minute", "many/minute", "20/fortnight", "-1/s"):
        monkeypatch.setenv("THROTTLE_SUBMIT_RATE", bad)
        with pytest.raises(ImproperlyConfigured, match="THROTTLE_SUBMIT_RATE must be a rate"):
            project_settings.env_rate("THROTTLE_SUBMIT_RATE", "20/minute")
    monkeypatch.setenv("CACHE_URL", "memcached://x")
    with pytest.raises(ImproperlyConfigured, match="CACHE_URL"):
        project_settings.env_cache_url("CACHE_URL", "redis://h:6379/0")
    monkeypatch.delenv("CACHE_URL")
    assert project_settings.env_cache_url("CACHE_URL", "redis://h:6379/3") == "redis://h:6379/4"
    assert project_settings.env_cache_url("CACHE_URL", "redis://h:6379/15") == "redis://h:6379/0"
    # Beside RabbitMQ there is no Redis to derive: it must be named (or locmem:// chosen).
    with pytest.raises(ImproperlyConfigured, match="CACHE_URL must be set when CELERY_BROKER_URL"):
        project_settings.env_cache_url("CACHE_URL", "amqp://guest@h//")


# Throttles


def test_submits_past_the_rate_answer_429_naming_the_limit(api, shared_cache, settings):
    client, prefix = shared_cache
    settings.THROTTLE_SUBMIT_RATE = "3/day"  # a day: no window ends during the test
    for _ in range(3):
        assert api.post("/api/videos/", VIDEO, format="json").status_code == 202

    body = too_many(api.post("/api/videos/", VIDEO, format="json"))
    assert "3/day" in body["detail"] and "THROTTLE_SUBMIT_RATE" in body["detail"]
    # one count per user across run kinds; reading is not a submit
    too_many(api.post("/api/podcasts/", {}, format="json"))
    assert api.get("/api/videos/").status_code == 200
    assert VideoRun.objects.count() == 3
    # counted in Redis, where every web process counts
    assert client.keys(f"{prefix}:*throttle:submit:*")


def test_another_users_submits_are_counted_apart(api, shared_cache, settings, django_user_model):
    settings.THROTTLE_SUBMIT_RATE = "1/day"
    assert api.post("/api/videos/", VIDEO, format="json").status_code == 202
    too_many(api.post("/api/videos/", VIDEO, format="json"))
    other = staff_client(django_user_model)
    assert other.post("/api/videos/", VIDEO, format="json").status_code == 202


def test_token_requests_past_the_rate_answer_429_naming_the_limit(user, shared_cache, settings):
    settings.THROTTLE_TOKEN_RATE = "2/day"
    client = APIClient()
    for _ in range(2):
        reply = client.post("/api/auth/token/", {"username": "alice", "password": "nope"})
        assert reply.status_code == 400
    body = too_many(
        client.post("/api/auth/token/", {"username": "alice", "password": "a-long-password-1"})
    )
    assert "THROTTLE_TOKEN_RATE" in body["detail"]


def test_the_token_endpoint_still_hands_out_tokens(user, shared_cache):
    reply = APIClient().post(
        "/api/auth/token/", {"username": "alice", "password": "a-long-password-1"}, format="json"
    )
    assert reply.status_code == 200 and len(reply.json()["token"]) == 40


# The cap on active runs


def test_a_user_at_the_active_run_cap_gets_429_naming_the_cap(
    api, user, shared_cache, settings, django_user_model
):
    settings.RUN_ACTIVE_LIMIT_PER_USER = 2
    SleepRun.objects.create(owner=user, status=RunStatus.RUNNING)  # another kind counts too
    SleepRun.objects.create(owner=user, status=RunStatus.SUCCEEDED)  # finished: does not count
    assert api.post("/api/videos/", VIDEO, format="json").status_code == 202

    body = too_many(api.post("/api/videos/", VIDEO, format="json"))
    assert "2 active runs" in body["detail"] and "RUN_ACTIVE_LIMIT_PER_USER" in body["detail"]
    assert VideoRun.objects.count() == 1

    SleepRun.objects.filter(owner=user, status=RunStatus.RUNNING).update(status=RunStatus.CANCELLED)
    assert api.post("/api/videos/", VIDEO, format="json").status_code == 202


def test_staff_are_exempt_from_the_active_run_cap(shared_cache, settings, django_user_model):
    settings.RUN_ACTIVE_LIMIT_PER_USER = 1
    client = staff_client(django_user_model)
    for _ in range(3):
        assert client.post("/api/videos/", VIDEO, format="json").status_code == 202


def test_an_idempotent_replay_is_not_refused_by_the_cap(api, shared_cache, settings):
    settings.RUN_ACTIVE_LIMIT_PER_USER = 1
    first = api.post("/api/videos/", VIDEO, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    again = api.post("/api/videos/", VIDEO, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]


# Login lockout


def admin_login(client: Client, username: str, password: str):
    return client.post("/admin/login/", {"username": username, "password": password})


def test_the_admin_login_locks_out_after_repeated_failures_then_cools_off(
    django_user_model, shared_cache, settings
):
    settings.LOGIN_FAILURE_LIMIT = 3
    settings.LOGIN_COOLOFF_SECONDS = 2
    django_user_model.objects.create_superuser("root", password=PASSWORD)
    client = Client()
    for _ in range(3):
        assert admin_login(client, "root", "wrong").status_code == 200  # the form, with an error

    locked = admin_login(client, "root", PASSWORD)
    assert locked.status_code == 429
    assert int(locked["Retry-After"]) >= 1
    assert b"Too many failed logins" in locked.content
    assert "_auth_user_id" not in client.session
    assert admin_login(client, "someone-else", "x").status_code == 200  # per username

    wait_for(
        lambda: admin_login(client, "root", PASSWORD).status_code == 302,
        timeout=20,
        what="the cool-off to end",
    )
    assert client.session["_auth_user_id"]


def test_failures_at_the_token_endpoint_lock_the_admin_login_too(user, shared_cache, settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    api = APIClient()
    for _ in range(3):
        assert (
            api.post("/api/auth/token/", {"username": "alice", "password": "x"}).status_code == 400
        )

    body = too_many(
        api.post("/api/auth/token/", {"username": "alice", "password": "a-long-password-1"})
    )
    assert "LOGIN_FAILURE_LIMIT" in body["detail"]
    assert admin_login(Client(), "alice", "a-long-password-1").status_code == 429


def test_many_usernames_from_one_address_are_locked_out(user, shared_cache, settings):
    settings.LOGIN_FAILURE_LIMIT = 100
    settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS = 4
    api = APIClient()
    for n in range(4):
        assert (
            api.post("/api/auth/token/", {"username": f"u{n}", "password": "x"}).status_code == 400
        )
    too_many(api.post("/api/auth/token/", {"username": "alice", "password": "a-long-password-1"}))


def test_a_successful_login_forgets_earlier_failures(user, shared_cache, settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    api = APIClient()
    right = {"username": "alice", "password": "a-long-password-1"}
    for _ in range(2):
        api.post("/api/auth/token/", {"username": "alice", "password": "x"})
    assert api.post("/api/auth/token/", right).status_code == 200
    for _ in range(2):
        api.post("/api/auth/token/", {"username": "alice", "password": "x"})
    assert api.post("/api/auth/token/", right).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_the_cap_counts_a_concurrent_submit_once_it_has_committed(user, settings):
    """The count is read with the user's cap lock taken in the same statement (runs/limits.py): a
    submit waiting on a submit that holds the lock counts that one's run after its commit."""
    from django.db import connection, transaction

    from runs import limits

    if not connection.features.has_select_for_update:
        pytest.skip("a database without row locks runs one writer at a time")
    settings.RUN_ACTIVE_LIMIT_PER_USER = 2
    SleepRun.objects.create(owner=user, status=RunStatus.RUNNING)
    locked, commit = threading.Event(), threading.Event()
    verdicts: dict[str, str] = {}

    def submit(name: str, hold: bool) -> None:
        try:
            with transaction.atomic():
                limits.check_active_runs(user)
                SleepRun.objects.create(owner=user, status=RunStatus.QUEUED)
                if hold:
                    locked.set()
                    commit.wait(30)
            verdicts[name] = "accepted"
        except limits.ActiveRunLimit:
            verdicts[name] = "refused"
        finally:
            connection.close()

    first = threading.Thread(target=submit, args=("first", True))
    first.start()
    assert locked.wait(30)
    second = threading.Thread(target=submit, args=("second", False))
    second.start()
    wait_for(lock_waits, timeout=30, what="the second submit to wait for the user's row")
    commit.set()
    first.join(30)
    second.join(30)

    assert verdicts == {"first": "accepted", "second": "refused"}
    assert SleepRun.objects.filter(status=RunStatus.QUEUED).count() == 1


def lock_waits() -> bool:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'"
        )
        return cursor.fetchone()[0] > 0
