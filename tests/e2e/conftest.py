from __future__ import annotations

import resource
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e.backends import (
    SHARED_REDIS,
    RedisServer,
    create_database,
    drop_database,
    postgres_unreachable,
    redis_prefix,
    redis_unreachable,
)
from tests.e2e.chat import ChatProcess, GonetProcess
from tests.e2e.processes import SignalerProcess, start_signaler

StartSignaler = Callable[..., SignalerProcess]


@pytest.fixture(scope="session", autouse=True)
def _enough_file_descriptors() -> None:
    """Thousands of sockets in one test: raise the soft limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 16384 if hard == resource.RLIM_INFINITY else min(hard, 16384)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


@pytest.fixture
def signaler_factory(tmp_path: Path) -> Iterator[StartSignaler]:
    started: list[SignalerProcess] = []

    def start(*args: str, **kwargs: object) -> SignalerProcess:
        signaler = start_signaler(tmp_path, *args, **kwargs)  # type: ignore[arg-type]
        started.append(signaler)
        return signaler

    yield start
    for signaler in started:
        signaler.stop()


@pytest.fixture
def signaler(signaler_factory: StartSignaler) -> SignalerProcess:
    """A signaler with the management API enabled (password ``api-secret``)."""
    return signaler_factory("--api-password", "api-secret", "--heartbeat", "2s")


@pytest.fixture
def chat_factory(tmp_path: Path) -> Iterator[Callable[..., ChatProcess]]:
    started: list[ChatProcess] = []

    def start(signaler_url: str, *args: str, **kwargs: str) -> ChatProcess:
        chat = ChatProcess(signaler_url, tmp_path, *args, **kwargs)
        started.append(chat)
        return chat

    yield start
    for chat in started:
        if chat.process.poll() is None:
            chat.kill()


@pytest.fixture
def gonet_factory(tmp_path: Path) -> Iterator[Callable[..., GonetProcess]]:
    started: list[GonetProcess] = []

    def start(signaler_url: str, room: str, *args: str) -> GonetProcess:
        member = GonetProcess(signaler_url, tmp_path, room, *args)
        started.append(member)
        return member

    yield start
    for member in started:
        if member.process.poll() is None:
            member.kill()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh database on the machine's PostgreSQL, dropped afterwards."""
    if (reason := postgres_unreachable()) is not None:
        pytest.skip(reason)
    url = create_database()
    yield url
    drop_database(url)


@pytest.fixture
def redis_url() -> str:
    """The machine's Redis; tests keep apart through their own channel prefix."""
    if (reason := redis_unreachable()) is not None:
        pytest.skip(reason)
    return SHARED_REDIS


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis server of this test's own, to stop and restart."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()


@dataclass
class Cluster:
    """Signaler instances sharing one database and one Redis channel prefix."""

    start_signaler: StartSignaler
    database: str
    redis: str
    prefix: str = field(default_factory=redis_prefix)

    def start(self, *args: str) -> SignalerProcess:
        return self.start_signaler(
            *("--postgres-url", self.database, "--redis-url", self.redis),
            *("--redis-prefix", self.prefix, "--api-password", "api-secret"),
            *("--heartbeat", "2s", *args),
        )


@pytest.fixture
def cluster(postgres_url: str, redis_url: str, signaler_factory: StartSignaler) -> Cluster:
    # The database first, the signalers last: fixtures end in reverse, so the signalers stop
    # before their database is dropped (else each one's shutdown waits out a lost database).
    return Cluster(signaler_factory, postgres_url, redis_url)
