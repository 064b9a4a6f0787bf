"""The servers bench/signaler.py measures: `weron signaler` (now or at a git revision), the
reference relay, and clusters of signalers on PostgreSQL and Redis, each a process of its own."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from common import cpu_seconds, free_port, log, source_at
from signaler_client import HOST

HERE: Final = Path(__file__).resolve().parent
WERON: Final = (sys.executable, "-m", "weron")


@dataclass(slots=True)
class Server:
    """A server under test, in its own process."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def ports(self) -> list[int]:
        return [self.port]

    def cpu_seconds(self) -> float:
        """CPU time of the server process so far, all threads (bcrypt runs in a pool)."""
        return cpu_seconds(self.process.pid)

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


@dataclass(slots=True)
class Cluster:
    """Signaler instances sharing PostgreSQL and Redis, measured as one server: clients are
    spread over the instances round-robin, CPU time is the sum of theirs."""

    name: str
    instances: list[Server]

    @property
    def port(self) -> int:
        return self.instances[0].port

    @property
    def ports(self) -> list[int]:
        return [instance.port for instance in self.instances]

    def cpu_seconds(self) -> float:
        return sum(instance.cpu_seconds() for instance in self.instances)

    def check_alive(self) -> None:
        for instance in self.instances:
            instance.check_alive()


Target = Server | Cluster


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM the server if this benchmark dies without cleaning up."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start_server(
    name: str, argv: list[str], port: int, log_dir: Path, env: dict[str, str] | None = None
) -> Server:
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            argv,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 (no thread exists yet at this point)
        )
    server = Server(name, port, process, log_path)
    deadline = time.monotonic() + 30
    while True:
        try:
            server.check_alive()
            with socket.create_connection((HOST, port), timeout=0.5):
                break
        except OSError:
            if time.monotonic() > deadline:
                stop_server(server)
                raise RuntimeError(
                    f"{name} did not listen on {port}:\n{server.log_tail()}"
                ) from None
            time.sleep(0.05)
    log(f"{name} listening on {HOST}:{port} (pid {process.pid})")
    return server


def stop_server(server: Server) -> int | None:
    """SIGTERM, then SIGKILL after 10 s; returns the exit status."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(10)
        except subprocess.TimeoutExpired:
            log(f"{server.name} ignored SIGTERM for 10 s, killing it")
            server.process.kill()
            server.process.wait()
    return server.process.returncode


def signaler_argv(port: int) -> list[str]:
    # --verbose 3: errors only, so that logging does not distort the figures
    return [*WERON, "signaler", "--laddr", f"{HOST}:{port}", "--verbose", "3"]


# All clients come from one address: no per-source cap (older revisions ignore the variable).
_UNCAPPED: Final = {"WERON_MAX_SOURCE_CONNECTIONS": "0"}


@contextlib.contextmanager
def servers(
    log_dir: Path, before: str | None = None
) -> Iterator[tuple[Server, Server, Server | None, dict[str, dict[str, Any]]]]:
    """The signaler, the reference relay and, with ``before``, the signaler at that revision;
    on the way out they are stopped, and their exit status and last log lines (errors only,
    for the signalers) recorded in the dict."""
    outcomes: dict[str, dict[str, Any]] = {}
    started: list[Server] = []
    try:
        port = free_port(HOST)
        ours = start_server("weron", signaler_argv(port), port, log_dir, _UNCAPPED)
        started.append(ours)
        old = None
        if before is not None:
            source = source_at(before, log_dir / "before")
            port = free_port(HOST)
            old = start_server(
                "before", signaler_argv(port), port, log_dir, {"PYTHONPATH": str(source)}
            )
            started.append(old)
        port = free_port(HOST)
        reference = start_server(
            "reference",
            [sys.executable, str(HERE / "reference_relay.py"), "--host", HOST, "--port", str(port)],
            port,
            log_dir,
        )
        started.append(reference)
        yield ours, reference, old, outcomes
    finally:
        for server in started:
            outcomes[server.name] = {"exit_code": stop_server(server), "log": server.log_tail()}


@dataclass(frozen=True, slots=True)
class ScaleConfig:
    name: str
    instances: int
    shared: bool  # PostgreSQL + Redis, else in memory


SCALE_CONFIGS: Final = (
    ScaleConfig("memory x1", 1, shared=False),
    ScaleConfig("pg+redis x1", 1, shared=True),
    ScaleConfig("pg+redis x2", 2, shared=True),
)


def _database_url(admin_url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(admin_url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


@contextlib.contextmanager
def bench_database(admin_url: str) -> Iterator[str]:
    """A fresh database for one configuration, dropped afterwards."""
    import psycopg

    name = f"weron_bench_{os.urandom(6).hex()}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")  # our own hex name
    try:
        yield _database_url(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextlib.contextmanager
def start_cluster(
    config: ScaleConfig,
    args: argparse.Namespace,
    log_dir: Path,
    outcomes: dict[str, dict[str, Any]],
) -> Iterator[Cluster]:
    """The configuration's instances, stopped (exit status and error lines recorded) after."""
    with contextlib.ExitStack() as stack:
        backend: list[str] = []
        if config.shared:
            database = stack.enter_context(bench_database(args.postgres_url))
            prefix = f"weron-bench-{os.urandom(6).hex()}:"
            backend = ["--postgres-url", database, "--redis-url", args.redis_url]
            backend += ["--redis-prefix", prefix]
        instances: list[Server] = []
        try:
            for index in range(config.instances):
                port = free_port(HOST)
                name = f"{config.name} #{index + 1}"
                argv = signaler_argv(port) + backend
                instances.append(start_server(name, argv, port, log_dir, _UNCAPPED))
            yield Cluster(config.name, instances)
        finally:
            for server in instances:
                outcomes[server.name] = {
                    "exit_code": stop_server(server),
                    "log": server.log_tail(),
                }
