"""The real PostgreSQL and Redis the scale-out tests use: a fresh database per test, a random
channel prefix per test, and Redis servers of our own to stop and restart."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
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


class CuttableLink:
    """A TCP relay on loopback to ``target_port``, in a thread of its own (the tests start
    signalers synchronously): the network between one client and its server, which the test
    cuts (every connection through it ends, new ones are closed at once) and mends."""

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._cut = False
        self._server: asyncio.Server | None = None
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self._thread.start()
        started.wait(5)
        assert self._server is not None, "the link did not start"
        self.port: int = self._server.sockets[0].getsockname()[1]

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        serving = asyncio.start_server(self._serve, "127.0.0.1", 0)
        self._server = self._loop.run_until_complete(serving)
        started.set()
        self._loop.run_forever()

    def cut(self) -> None:
        self._call(self._cut_now)

    def mend(self) -> None:
        self._call(lambda: setattr(self, "_cut", False))

    def close(self) -> None:
        self._call(self._cut_now)
        if self._server is not None:
            self._call(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()

    def _call(self, function: Callable[[], None]) -> None:
        """Run ``function`` on the link's loop, and wait until it ran."""
        done = threading.Event()

        def run() -> None:
            function()
            done.set()

        self._loop.call_soon_threadsafe(run)
        done.wait(5)

    def _cut_now(self) -> None:
        self._cut = True
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        pair = (writer, up_writer)
        await asyncio.gather(
            self._pump(reader, up_writer, pair), self._pump(up_reader, writer, pair)
        )

    async def _pump(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
    ) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        for writer in pair:  # one side ended: so does the other
            writer.transport.abort()
            self._writers.discard(writer)
