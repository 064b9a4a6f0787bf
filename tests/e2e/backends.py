"""The real PostgreSQL and Redis the scale-out tests use: a fresh database per test, a random
channel prefix per test, and Redis servers of our own to stop and restart."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis

from tests.e2e.processes import free_port

POSTGRES_ADMIN = "postgres://postgres@127.0.0.1:5432/postgres"
SHARED_REDIS = "redis://127.0.0.1:6379/0"


def postgres_unreachable() -> str | None:
    """Why PostgreSQL cannot be used at 127.0.0.1:5432, or ``None``."""
    try:
        with psycopg.connect(POSTGRES_ADMIN, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"PostgreSQL not reachable at 127.0.0.1:5432 as user postgres: {exc}"


def redis_unreachable(url: str = SHARED_REDIS) -> str | None:
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=3) as client:
            client.ping()
            return None
    except (redis.RedisError, OSError) as exc:
        return f"Redis not reachable at {url}: {exc}"


def create_database() -> str:
    """A new, empty database; its URL."""
    name = f"weron_test_{os.urandom(6).hex()}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")  # name is ours: hex only
    return f"postgres://postgres@127.0.0.1:5432/{name}"


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def redis_prefix() -> str:
    """A channel prefix no other test (or session sharing this Redis) uses."""
    return f"weron-test-{os.urandom(6).hex()}:"


@dataclass
class RedisServer:
    """A redis-server of our own on a loopback port: stopped and restarted by pid, never the
    machine's shared one."""

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", str(self.directory)]
        with (self.directory / f"redis-{self.port}.log").open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while redis_unreachable(self.url) is not None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} did not start")
            time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(15)
