"""Benchmark of `weron signaler`: joins per second and relay latency, next to a reference.

The machines this runs on are shared and noisy, so every figure is measured twice in the same
run: against the signaler and against bench/reference_relay.py (a minimal relay on the
``websockets`` library), with the same clients, and reported as ours/reference.

Usage: ``.venv/bin/python bench/signaler.py [--quick] [--json-out PATH]``. Progress goes to
stderr; stdout gets a table, then one JSON document.

``--before REV`` also starts `weron signaler` as it was at git revision REV (its ``src`` from
``git archive``), and measures first joins (each creating its community) against it too, to
show a change of that path in one run next to the other figures.

``--scale`` measures scaling out instead: joins/s and relay latency with 100 to 5,000 members,
for one in-memory instance (the reference, today's default), one instance on PostgreSQL and
Redis, and two such instances sharing them (clients spread over both, the sender on the first).
It needs PostgreSQL (``--postgres-url``, a database it may create others from) and Redis
(``--redis-url``); each configuration gets a fresh database and channel prefix.

The clients are a hand-rolled WebSocket client on a bare asyncio Protocol: parsing a small frame
costs it about 0.5 us, a tenth of what websockets' sans-I/O parser costs, so the process holding
1,000 receivers spends per receipt about what the server spends per frame (mostly kernel time;
the JSON reports both) rather than several times that, and the latencies stay the server's.
Receivers run in a subprocess (this script with ``--receiver-worker``); the sender and the join
clients run in this one.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import ctypes
import datetime
import hashlib
import json
import math
import os
import platform
import random
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, Final, TextIO, cast

import bcrypt
import uvloop
from websockets.frames import Frame, Opcode

from common import (
    cpu_seconds,
    free_port,
    json_safe,
    log,
    number,
    percentile,
    source_at,
    source_revision,
)

HERE: Final = Path(__file__).resolve().parent
WERON: Final = (sys.executable, "-m", "weron")
HOST: Final = "127.0.0.1"
PASSWORD: Final = "bench-password"
_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_CLOSE_1000: Final = Frame(Opcode.CLOSE, b"\x03\xe8")
_SEQ_DIGITS: Final = 8
_JOIN_GATE: Final = 64  # receivers joining at once: a burst, without flooding the listen backlog
_PAD: Final = b" " + b"x" * 40  # the rest of a ~70-byte message, about a small ICE candidate

# Measured earlier on this machine with the original Go weron, not in this run: context only.
GO_ORIGINAL: Final[dict[str, float]] = {
    "joins_per_s_c20": 15.0,
    "relay_10_fanout_p50_ms": 0.7,
    "relay_100_fanout_p50_ms": 4.9,
}
GO_ORIGINAL_NOTE: Final = "original Go weron, measured earlier on this machine, not in this run"


@dataclass(frozen=True, slots=True)
class Profile:
    """How much to measure: --quick is a CI smoke run (< 60 s), the default a real run."""

    join_concurrency: tuple[int, ...]
    join_seconds: float  # per round
    join_rounds: int  # rounds alternate ours/reference so drift hits both alike
    first_join_count: int
    first_join_concurrency: int
    relay_sizes: tuple[int, ...]
    relay_messages: int
    relay_warmup: int
    relay_pause_s: tuple[float, float]  # random pause after a fan-out completes, min and max
    relay_timeout_s: float  # give up waiting for one message's fan-out after this


FULL: Final = Profile(
    join_concurrency=(20, 200),
    join_seconds=6.0,
    join_rounds=2,
    first_join_count=200,
    first_join_concurrency=20,
    relay_sizes=(10, 100, 1000),
    relay_messages=400,
    relay_warmup=30,
    relay_pause_s=(0.010, 0.015),
    relay_timeout_s=2.0,
)
QUICK: Final = Profile(
    join_concurrency=(20, 200),
    join_seconds=1.5,
    join_rounds=1,
    first_join_count=40,
    first_join_concurrency=8,
    relay_sizes=(10, 100, 1000),
    relay_messages=60,
    relay_warmup=10,
    relay_pause_s=(0.005, 0.010),
    relay_timeout_s=2.0,
)
SCALE: Final = Profile(
    join_concurrency=(100,),
    join_seconds=6.0,
    join_rounds=1,
    first_join_count=0,
    first_join_concurrency=1,
    relay_sizes=(100, 1000, 5000),
    relay_messages=200,
    relay_warmup=20,
    relay_pause_s=(0.010, 0.015),
    relay_timeout_s=3.0,
)
SCALE_QUICK: Final = Profile(
    join_concurrency=(50,),
    join_seconds=1.5,
    join_rounds=1,
    first_join_count=0,
    first_join_concurrency=1,
    relay_sizes=(100, 500),
    relay_messages=40,
    relay_warmup=5,
    relay_pause_s=(0.005, 0.010),
    relay_timeout_s=3.0,
)


# Statistics


def summarize_ns(values: Sequence[int]) -> dict[str, float]:
    """p50/p90/p99/max/mean in milliseconds of nanosecond samples."""
    ordered = sorted(values)
    ms = 1e-6
    return {
        "count": len(ordered),
        "p50_ms": percentile(ordered, 50) * ms,
        "p90_ms": percentile(ordered, 90) * ms,
        "p99_ms": percentile(ordered, 99) * ms,
        "max_ms": (ordered[-1] * ms) if ordered else math.nan,
        "mean_ms": (sum(ordered) / len(ordered) * ms) if ordered else math.nan,
    }


# A minimal WebSocket client


class JoinError(Exception):
    """The server refused the join (no 101, wrong accept key) or broke the protocol."""


MessageSink = Callable[[bytes, int], None]  # (payload, receive time in monotonic ns)


class BenchClient(asyncio.Protocol):
    """Just enough RFC 6455 for a client that measures: opening handshake, unmasked frame
    reader, pong and close answers. Receive times are taken on entry to ``data_received``,
    before any parsing."""

    def __init__(self, port: int, path: str, on_message: MessageSink | None = None) -> None:
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self._key = base64.b64encode(os.urandom(16))
        self._request = (
            f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {self._key.decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self._on_message = on_message
        self._transport: asyncio.Transport | None = None
        self._head = b""
        self._buffer = b""
        self._open = False
        self._failed = False
        self._close_sent = False
        self._fragments: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        if self._failed:
            return
        if not self._open:
            data = self._read_handshake(data)
        if self._buffer:
            data, self._buffer = self._buffer + data, b""
        size = len(data)
        position = 0
        while size - position >= 2:
            first, second = data[position], data[position + 1]
            length = second & 0x7F
            start = position + 2
            if length == 126:
                if size - start < 2:
                    break
                length = int.from_bytes(data[start : start + 2])
                start += 2
            elif length == 127:
                if size - start < 8:
                    break
                length = int.from_bytes(data[start : start + 8])
                start += 8
            if second & 0x80:
                self._fail(JoinError("server sent a masked frame"))
                return
            end = start + length
            if end > size:
                break
            self._on_frame(first, data[start:end], now)
            position = end
        if position < size:
            self._buffer = data[position:]

    def _read_handshake(self, data: bytes) -> bytes:
        """Consume the response head; return the bytes after it (frames, if any)."""
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            return b""
        head, rest = self._head[:end], self._head[end + 4 :]
        self._head = b""
        lines = head.split(b"\r\n")
        status = lines[0].split(b" ", 2)
        if len(status) < 2 or status[1] != b"101":
            self._fail(JoinError(lines[0].decode("latin-1")))
            return b""
        accept = base64.b64encode(hashlib.sha1(self._key + _GUID).digest())
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(b":") for line in lines[1:])
        }
        if headers.get(b"sec-websocket-accept") != accept:
            self._fail(JoinError("wrong Sec-WebSocket-Accept"))
            return b""
        self._open = True
        self.opened.set_result(None)
        return rest

    def _on_frame(self, first: int, payload: bytes, now: int) -> None:
        opcode = first & 0x0F
        fin = first & 0x80
        if opcode in (0x1, 0x2):
            if fin:
                if self._on_message is not None:
                    self._on_message(payload, now)
            else:
                self._fragments = [payload]
        elif opcode == 0x0:
            self._fragments.append(payload)
            if fin and self._on_message is not None:
                self._on_message(b"".join(self._fragments), now)
        elif opcode == 0x9:
            self._write(Frame(Opcode.PONG, payload))
        elif opcode == 0x8 and not self._close_sent:
            self._close_sent = True  # echo the close; the server then closes TCP
            self._write(Frame(Opcode.CLOSE, payload[:2]))

    def _write(self, frame: Frame) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(frame.serialize(mask=True))

    def _fail(self, exc: Exception) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)
        self._open = False
        self._failed = True
        if self._transport is not None:
            self._transport.close()

    def send_text(self, payload: bytes) -> None:
        self._write(Frame(Opcode.TEXT, payload))

    def close(self) -> None:
        """Start the closing handshake (the server closes the TCP connection after it)."""
        if not self._close_sent:
            self._close_sent = True
            self._write(_CLOSE_1000)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("connection closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)


def join_path(community: str, password: str = PASSWORD) -> str:
    return "/?" + urllib.parse.urlencode({"community": community, "password": password})


async def connect(port: int, path: str, on_message: MessageSink | None = None) -> BenchClient:
    """An open client; raises JoinError or OSError when the join fails."""
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(
        lambda: BenchClient(port, path, on_message), HOST, port
    )
    try:
        await client.opened
    except BaseException:
        client.abort()
        raise
    return client


# Servers and processes


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


# Joins


@dataclass(slots=True)
class JoinRun:
    """Completed join cycles (open, 101, close handshake) of one scenario against one server."""

    joins: int = 0
    seconds: float = 0.0
    server_cpu_s: float = 0.0
    harness_cpu_s: float = 0.0
    handshake_ns: list[int] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    def add(self, other: JoinRun) -> None:
        self.joins += other.joins
        self.seconds += other.seconds
        self.server_cpu_s += other.server_cpu_s
        self.harness_cpu_s += other.harness_cpu_s
        self.handshake_ns += other.handshake_ns
        self.errors += other.errors

    def summary(self) -> dict[str, Any]:
        per_join = 1e6 / self.joins if self.joins else math.nan
        return {
            "joins": self.joins,
            "seconds": round(self.seconds, 3),
            "joins_per_s": self.joins / self.seconds if self.seconds else math.nan,
            "handshake": summarize_ns(self.handshake_ns),
            "server_cpu_us_per_join": self.server_cpu_s * per_join,
            "harness_cpu_us_per_join": self.harness_cpu_s * per_join,
            "errors": dict(self.errors),
        }


def _harness_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _join_cycle(port: int, path: str) -> int:
    """One join and leave; returns the time from connect to the 101 response."""
    started = time.monotonic_ns()
    client = await connect(port, path)
    opened = time.monotonic_ns()
    client.close()
    try:
        async with asyncio.timeout(5):
            await client.closed
    finally:
        client.abort()
    return opened - started


async def measure_joins(
    server: Target,
    concurrency: int,
    *,
    seconds: float | None = None,
    new_communities: int | None = None,
    tag: str,
) -> JoinRun:
    """``concurrency`` clients joining in a loop, either one community kept alive by an anchor
    member for ``seconds``, or ``new_communities`` distinct fresh ones (a bcrypt hash each)."""
    run = JoinRun()
    anchor = None if new_communities else await connect(server.port, join_path(f"join-{tag}"))
    names = iter(range(new_communities or 0))
    deadline = time.monotonic() + (seconds or 0)

    async def client(port: int) -> None:
        while True:
            if new_communities:
                index = next(names, None)
                if index is None:
                    return
                path = join_path(f"first-{tag}-{index}")
            elif time.monotonic() >= deadline:
                return
            else:
                path = join_path(f"join-{tag}")
            try:
                async with asyncio.timeout(30):
                    run.handshake_ns.append(await _join_cycle(port, path))
                run.joins += 1
            except (OSError, JoinError, TimeoutError) as exc:
                run.errors[f"{type(exc).__name__}: {exc}"[:120]] += 1
                await asyncio.sleep(0.01)

    cpu_before, harness_before = server.cpu_seconds(), _harness_cpu()
    started = time.monotonic()
    try:
        ports = server.ports
        await asyncio.gather(*(client(ports[n % len(ports)]) for n in range(concurrency)))
    finally:
        if anchor is not None:
            anchor.abort()
    run.seconds = time.monotonic() - started
    run.server_cpu_s = server.cpu_seconds() - cpu_before
    run.harness_cpu_s = _harness_cpu() - harness_before
    server.check_alive()
    return run


# Relay


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    ports: list[int]  # receiver n joins through ports[n % len(ports)]
    community: str
    receivers: int
    warmup: int


def _message(seq: int) -> bytes:
    """Sequence number and send time (monotonic ns: one clock for all processes on Linux)."""
    return b"%0*d %020d" % (_SEQ_DIGITS, seq, time.monotonic_ns()) + _PAD


async def receiver_worker(config: WorkerConfig) -> None:
    """The receiving side of one relay measurement, in its own process.

    Protocol on stdin/stdout: prints ``ready`` once every receiver joined, ``done SEQ`` when the
    last receiver got message SEQ, and on ``stop`` (or end of stdin) one ``result {json}`` line."""
    receipts: list[tuple[bytes, int]] = []
    counts: dict[bytes, int] = {}
    receivers = config.receivers
    out = sys.stdout

    def on_message(payload: bytes, now: int) -> None:
        receipts.append((payload, now))
        seq = payload[:_SEQ_DIGITS]
        count = counts[seq] = counts.get(seq, 0) + 1
        if count == receivers:
            out.write(f"done {int(seq)}\n")
            out.flush()

    gate = asyncio.Semaphore(_JOIN_GATE)

    async def join(port: int) -> BenchClient:
        async with gate:
            return await connect(port, join_path(config.community), on_message)

    joins_started = time.monotonic()
    ports = config.ports
    clients = await asyncio.gather(*(join(ports[n % len(ports)]) for n in range(receivers)))
    joins_seconds = time.monotonic() - joins_started
    out.write("ready\n")
    out.flush()
    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    while (await asyncio.to_thread(sys.stdin.readline)).strip() not in ("stop", ""):
        pass
    usage = resource.getrusage(resource.RUSAGE_SELF)
    per_receipt = 1e6 / len(receipts) if receipts else math.nan
    lost = sum(client.closed.done() for client in clients)
    for client in clients:
        client.abort()

    per_receiver: list[int] = []
    by_message: dict[int, list[int]] = {}
    for payload, received in receipts:
        seq = int(payload[:_SEQ_DIGITS])
        if seq < config.warmup:
            continue
        latency = received - int(payload[_SEQ_DIGITS + 1 : _SEQ_DIGITS + 21])
        per_receiver.append(latency)
        by_message.setdefault(seq, []).append(latency)
    complete = [latencies for latencies in by_message.values() if len(latencies) == receivers]
    result = {
        "receivers": receivers,
        "messages_seen": len(by_message),
        "messages_complete": len(complete),
        "receipts": len(per_receiver),
        "receivers_disconnected": lost,
        "receivers_join_s": joins_seconds,
        # What a receipt costs the receivers' process (user, kernel): if it neared the server's
        # CPU per frame, latencies would measure the receivers.
        "worker_user_us_per_receipt": (usage.ru_utime - usage_before.ru_utime) * per_receipt,
        "worker_sys_us_per_receipt": (usage.ru_stime - usage_before.ru_stime) * per_receipt,
        "fanout": summarize_ns([max(latencies) for latencies in complete]),
        "first_receiver": summarize_ns([min(latencies) for latencies in complete]),
        "per_receiver": summarize_ns(per_receiver),
    }
    out.write("result " + json.dumps(result) + "\n")
    out.flush()


async def _read_line(stream: asyncio.StreamReader) -> str:
    line = await stream.readline()
    if not line:
        raise RuntimeError("receiver worker exited early")
    return line.decode().strip()


async def measure_relay(server: Target, receivers: int, profile: Profile) -> dict[str, Any]:
    """One sender, ``receivers`` receivers in a worker process; one message at a time, the next
    only after the previous reached every receiver plus a random pause, so no queue builds up.
    With a cluster the sender is on the first instance, receivers spread over all of them."""
    community = f"relay-{receivers}-{os.urandom(4).hex()}"
    config = WorkerConfig(server.ports, community, receivers, profile.relay_warmup)
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--receiver-worker",
        json.dumps(asdict(config)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        limit=1 << 20,
    )
    sender: BenchClient | None = None
    try:
        assert worker.stdin is not None and worker.stdout is not None
        async with asyncio.timeout(120):
            line = await _read_line(worker.stdout)
        if line != "ready":
            raise RuntimeError(f"receiver worker said {line!r}")
        sender = await connect(server.port, join_path(community))
        await asyncio.sleep(0.2)  # let the server settle after the burst of joins
        total = profile.relay_warmup + profile.relay_messages
        timeouts = 0
        cpu_before = 0.0
        measured_started = 0.0
        for seq in range(total):
            if seq == profile.relay_warmup:
                cpu_before, measured_started = server.cpu_seconds(), time.monotonic()
            sender.send_text(_message(seq))
            try:
                async with asyncio.timeout(profile.relay_timeout_s):
                    while await _read_line(worker.stdout) != f"done {seq}":
                        pass
            except TimeoutError:
                timeouts += 1
            await asyncio.sleep(random.uniform(*profile.relay_pause_s))
        server_cpu = server.cpu_seconds() - cpu_before
        measured_seconds = time.monotonic() - measured_started
        worker.stdin.write(b"stop\n")
        await worker.stdin.drain()
        async with asyncio.timeout(60):
            while not (line := await _read_line(worker.stdout)).startswith("result "):
                pass
        result: dict[str, Any] = json.loads(line.removeprefix("result "))
        result["messages_sent"] = profile.relay_messages
        result["fanout_timeouts"] = timeouts
        result["seconds"] = round(measured_seconds, 3)
        frames = profile.relay_messages * receivers
        result["server_cpu_us_per_delivered_frame"] = server_cpu * 1e6 / frames
        server.check_alive()
        return result
    finally:
        if sender is not None:
            sender.abort()
        if worker.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                worker.kill()
            await worker.wait()


# The whole run


@dataclass(frozen=True, slots=True)
class Figure:
    """One headline number, ours and the reference's."""

    name: str
    unit: str
    better: str  # "higher" or "lower"
    ours: float
    reference: float
    go_original: float | None = None

    @property
    def ratio(self) -> float:
        return self.ours / self.reference if self.reference else math.nan


async def run_all(
    profile: Profile, ours: Server, reference: Server, before: Server | None = None
) -> dict[str, Any]:
    """Every scenario against both servers, each pair back to back; first joins against the
    signaler at the ``--before`` revision too."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    targets = (ours, reference)
    details: dict[str, Any] = {server.name: {} for server in targets}

    for concurrency in profile.join_concurrency:
        runs = {server.name: JoinRun() for server in targets}
        for round_ in range(profile.join_rounds):
            order = targets if round_ % 2 == 0 else targets[::-1]
            for server in order:
                log(f"joins: {concurrency} clients, {server.name}, round {round_ + 1}")
                runs[server.name].add(
                    await measure_joins(
                        server,
                        concurrency,
                        seconds=profile.join_seconds,
                        tag=f"{concurrency}-{round_}",
                    )
                )
        for server in targets:
            details[server.name][f"joins_c{concurrency}"] = runs[server.name].summary()

    if before is not None:
        details[before.name] = {}
    for server in (*targets, *([before] if before is not None else [])):
        log(f"first joins: {profile.first_join_count} new communities, {server.name}")
        run = await measure_joins(
            server,
            profile.first_join_concurrency,
            new_communities=profile.first_join_count,
            tag=os.urandom(4).hex(),
        )
        details[server.name]["first_joins"] = run.summary()

    for receivers in profile.relay_sizes:
        for server in targets:
            log(f"relay: 1 sender to {receivers} receivers, {server.name}")
            details[server.name][f"relay_{receivers}"] = await measure_relay(
                server, receivers, profile
            )
    return details


def headline(
    details: dict[str, Any], profile: Profile, before_revision: str | None = None
) -> list[Figure]:
    ours, reference = details["weron"], details["reference"]
    figures: list[Figure] = []
    for concurrency in profile.join_concurrency:
        key = f"joins_c{concurrency}"
        figures.append(
            Figure(
                f"joins/s, {concurrency} concurrent clients",
                "joins/s",
                "higher",
                ours[key]["joins_per_s"],
                reference[key]["joins_per_s"],
                GO_ORIGINAL["joins_per_s_c20"] if concurrency == 20 else None,
            )
        )
        figures.append(
            Figure(
                f"join handshake p50, {concurrency} concurrent",
                "ms",
                "lower",
                ours[key]["handshake"]["p50_ms"],
                reference[key]["handshake"]["p50_ms"],
            )
        )
        figures.append(
            Figure(
                f"server CPU per join, {concurrency} concurrent",
                "us",
                "lower",
                ours[key]["server_cpu_us_per_join"],
                reference[key]["server_cpu_us_per_join"],
            )
        )
    figures.append(
        Figure(
            f"first joins/s (new community each), {profile.first_join_concurrency} concurrent",
            "joins/s",
            "higher",
            ours["first_joins"]["joins_per_s"],
            reference["first_joins"]["joins_per_s"],
        )
    )
    if before_revision is not None:
        figures.append(
            Figure(
                f"first joins/s, {profile.first_join_concurrency} concurrent: reference column "
                f"= weron at {before_revision}",
                "joins/s",
                "higher",
                ours["first_joins"]["joins_per_s"],
                details["before"]["first_joins"]["joins_per_s"],
            )
        )
    for receivers in profile.relay_sizes:
        key = f"relay_{receivers}"
        go = GO_ORIGINAL.get(f"relay_{receivers}_fanout_p50_ms")
        for metric, label in (("fanout", "fan-out done"), ("per_receiver", "per receiver")):
            for p in ("p50", "p99"):
                figures.append(
                    Figure(
                        f"relay to {receivers}: {label} {p}",
                        "ms",
                        "lower",
                        ours[key][metric][f"{p}_ms"],
                        reference[key][metric][f"{p}_ms"],
                        go if metric == "fanout" and p == "p50" else None,
                    )
                )
        figures.append(
            Figure(
                f"relay to {receivers}: server CPU per frame",
                "us",
                "lower",
                ours[key]["server_cpu_us_per_delivered_frame"],
                reference[key]["server_cpu_us_per_delivered_frame"],
            )
        )
    for receivers in profile.relay_sizes:
        key = f"relay_{receivers}"
        figures.append(
            Figure(
                f"relay to {receivers}: receivers all joined a new community "
                f"({min(receivers, _JOIN_GATE)} at once)",
                "s",
                "lower",
                ours[key]["receivers_join_s"],
                reference[key]["receivers_join_s"],
            )
        )
    return figures


def problems(details: dict[str, Any], outcomes: dict[str, dict[str, Any]]) -> list[str]:
    """Anything that makes figures suspect: failed joins, lost messages, unclean exits."""
    found: list[str] = []
    for name, scenarios in details.items():
        for scenario, result in scenarios.items():
            if result.get("errors"):
                found.append(f"{name} {scenario}: join errors {result['errors']}")
            for key in ("fanout_timeouts", "receivers_disconnected"):
                if result.get(key):
                    found.append(f"{name} {scenario}: {key} = {result[key]}")
            complete, sent = result.get("messages_complete"), result.get("messages_sent")
            if complete is not None and complete < sent:
                found.append(f"{name} {scenario}: {complete} of {sent} reached every receiver")
    for name, outcome in outcomes.items():
        if outcome["exit_code"] != 0:
            found.append(f"{name} exited with status {outcome['exit_code']}")
        if outcome["log"]:
            found.append(f"{name} logged (see servers.{name}.log in the JSON)")
    return found


def print_table(figures: list[Figure], out: TextIO) -> None:
    rows = [("figure", "unit", "weron", "reference", "ours/ref", "better", "Go original")]
    rows += [
        (
            figure.name,
            figure.unit,
            number(figure.ours),
            number(figure.reference),
            number(figure.ratio),
            figure.better,
            number(figure.go_original),
        )
        for figure in figures
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for index, row in enumerate(rows):
        cells = [
            cell.ljust(width) if column < 2 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells), file=out)
        if index == 0:
            print("  ".join("-" * width for width in widths), file=out)


def bcrypt_hash_ms(rounds: int = 10) -> float:
    """One bcrypt hash at the signaler's cost, timed here: what a first join must pay."""
    salt = bcrypt.gensalt(rounds=rounds)
    started = time.perf_counter()
    bcrypt.hashpw(PASSWORD.encode(), salt)
    return (time.perf_counter() - started) * 1e3


def raise_nofile_limit() -> int:
    """Lift the soft descriptor limit to the hard one; children (servers, workers) inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# Scaling out: 1 in-memory instance, 1 and 2 instances on PostgreSQL + Redis


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


async def measure_cluster(profile: Profile, cluster: Cluster) -> dict[str, Any]:
    """Joins/s at the profile's concurrency, then relaying to each number of members."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    details: dict[str, Any] = {}
    for concurrency in profile.join_concurrency:
        log(f"joins: {concurrency} clients, {cluster.name}")
        run = await measure_joins(
            cluster, concurrency, seconds=profile.join_seconds, tag=os.urandom(4).hex()
        )
        details[f"joins_c{concurrency}"] = run.summary()
    for receivers in profile.relay_sizes:
        log(f"relay: 1 sender to {receivers} members, {cluster.name}")
        details[f"relay_{receivers}"] = await measure_relay(cluster, receivers, profile)
    return details


def scale_figures(details: dict[str, Any], profile: Profile) -> list[dict[str, Any]]:
    """One row per figure: each configuration's value, and ratios against the reference."""
    # (name, unit, better, path into a configuration's details, members per value or None:
    # "members joining at once" turns the seconds it took into joins/s)
    rows: list[tuple[str, str, str, tuple[str, ...], int | None]] = []
    for concurrency in profile.join_concurrency:
        key = f"joins_c{concurrency}"
        rows.append(
            (f"joins/s, {concurrency} concurrent", "joins/s", "higher", (key, "joins_per_s"), None)
        )
        rows.append(
            (
                f"join handshake p99, {concurrency} concurrent",
                "ms",
                "lower",
                (key, "handshake", "p99_ms"),
                None,
            )
        )
    for members in profile.relay_sizes:
        key = f"relay_{members}"
        rows.append(
            (
                f"{members} members joining at once",
                "joins/s",
                "higher",
                (key, "receivers_join_s"),
                members,
            )
        )
        for metric, label in (("fanout", "fan-out done"), ("per_receiver", "per member")):
            for p in ("p50", "p99"):
                rows.append(
                    (
                        f"relay to {members} members: {label} {p}",
                        "ms",
                        "lower",
                        (key, metric, f"{p}_ms"),
                        None,
                    )
                )
        rows.append(
            (
                f"relay to {members} members: CPU per frame, all instances",
                "us",
                "lower",
                (key, "server_cpu_us_per_delivered_frame"),
                None,
            )
        )

    def value(config: str, path: tuple[str, ...], members: int | None) -> float:
        found: Any = details[config]
        for part in path:
            found = found[part]
        number = float(found)
        if members is None:
            return number
        return members / number if number else math.nan

    reference, one, two = (config.name for config in SCALE_CONFIGS)
    figures = []
    for name, unit, better, path, per in rows:
        values = {config: value(config, path, per) for config in details}
        figures.append(
            {
                "name": name,
                "unit": unit,
                "better": better,
                "values": values,
                "ratio_2_over_1_instance": values[two] / values[one] if values[one] else math.nan,
                "ratio_2_instances_over_memory": (
                    values[two] / values[reference] if values[reference] else math.nan
                ),
            }
        )
    return figures


def print_scale_table(figures: list[dict[str, Any]], out: TextIO) -> None:
    names = [config.name for config in SCALE_CONFIGS]
    rows = [("figure", "unit", *names, "x2/x1", "x2/memory", "better")]
    rows += [
        (
            figure["name"],
            figure["unit"],
            *(number(figure["values"][name]) for name in names),
            number(figure["ratio_2_over_1_instance"]),
            number(figure["ratio_2_instances_over_memory"]),
            figure["better"],
        )
        for figure in figures
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for index, row in enumerate(rows):
        cells = [
            cell.ljust(width) if column < 2 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells), file=out)
        if index == 0:
            print("  ".join("-" * width for width in widths), file=out)


def scale_main(args: argparse.Namespace, nofile: int) -> int:
    profile = SCALE_QUICK if args.quick else SCALE
    started_at = datetime.datetime.now(datetime.UTC)
    started = time.monotonic()
    load_before = os.getloadavg()
    revision = source_revision()
    details: dict[str, Any] = {}
    outcomes: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="weron-bench-") as log_dir:
        try:
            for config in SCALE_CONFIGS:
                with start_cluster(config, args, Path(log_dir), outcomes) as cluster:
                    details[config.name] = uvloop.run(measure_cluster(profile, cluster))
        except KeyboardInterrupt:
            log("interrupted (SIGINT); servers stopped")
            return 130
        except asyncio.CancelledError:
            log("terminated (SIGTERM); servers stopped")
            return 143
    figures = scale_figures(details, profile)
    warnings = problems(details, outcomes)
    report = {
        "benchmark": "weron signaler scaling out: 1 in-memory instance (reference), 1 and 2 "
        "instances sharing PostgreSQL and Redis",
        "mode": "scale-quick" if args.quick else "scale",
        "started": started_at.isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - started, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
            "python": platform.python_version(),
            "nofile_limit": nofile,
        },
        "source": revision,
        "profile": asdict(profile),
        "figures": figures,
        "problems": warnings,
        "details": details,
        "servers": outcomes,
    }
    document = json.dumps(json_safe(report), indent=2)
    print_scale_table(figures, sys.stdout)
    for warning in warnings:
        print(f"WARNING: {warning}")
    print(document)
    if args.json_out is not None:
        args.json_out.write_text(document + "\n")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, for a CI smoke run")
    parser.add_argument("--json-out", type=Path, help="also write the JSON document here")
    parser.add_argument("--receiver-worker", metavar="CONFIG", help=argparse.SUPPRESS)
    parser.add_argument(
        "--scale", action="store_true", help="1 vs 2 instances on PostgreSQL + Redis"
    )
    parser.add_argument(
        "--before",
        metavar="REV",
        help="also measure first joins against weron signaler at this git revision",
    )
    parser.add_argument(
        "--postgres-url",
        default="postgres://postgres@127.0.0.1:5432/postgres",
        help="--scale: PostgreSQL to create the benchmark's databases in",
    )
    parser.add_argument(
        "--redis-url", default="redis://127.0.0.1:6379/0", help="--scale: Redis to use"
    )
    args = parser.parse_args()
    if args.receiver_worker:
        try:
            uvloop.run(receiver_worker(WorkerConfig(**json.loads(args.receiver_worker))))
        except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the parent reports
            return 130
        return 0

    if args.scale:
        nofile = raise_nofile_limit()
        if nofile < max(SCALE.relay_sizes) * 2 + 256:
            log(f"warning: only {nofile} file descriptors allowed")
        return scale_main(args, nofile)
    profile = QUICK if args.quick else FULL
    nofile = raise_nofile_limit()
    if nofile < max(profile.relay_sizes) + 256:  # per process: the signaler, the receivers
        log(f"warning: only {nofile} file descriptors allowed")
    started_at = datetime.datetime.now(datetime.UTC)
    started = time.monotonic()
    load_before = os.getloadavg()
    revision = source_revision()  # before the servers start: the code they load
    with tempfile.TemporaryDirectory(prefix="weron-bench-") as log_dir:
        try:
            with servers(Path(log_dir), args.before) as (ours, reference, before, outcomes):
                details = uvloop.run(run_all(profile, ours, reference, before))
        except KeyboardInterrupt:
            log("interrupted (SIGINT); servers stopped")
            return 130
        except asyncio.CancelledError:  # run_all's SIGTERM handler cancels it
            log("terminated (SIGTERM); servers stopped")
            return 143
    figures = headline(details, profile, args.before)
    warnings = problems(details, outcomes)
    report = {
        "benchmark": "weron signaler vs minimal websockets relay (bench/reference_relay.py)",
        "mode": "quick" if args.quick else "full",
        "started": started_at.isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - started, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
            "python": platform.python_version(),
            "websockets": version("websockets"),
            "uvloop": version("uvloop"),
            "nofile_limit": nofile,
            "bcrypt_cost10_hash_ms": bcrypt_hash_ms(),
        },
        "source": revision,
        "before": args.before,
        "profile": asdict(profile),
        "figures": [
            {**asdict(figure), "ratio_ours_over_reference": figure.ratio} for figure in figures
        ],
        "problems": warnings,
        "details": details,
        "servers": outcomes,
        "go_original": {"note": GO_ORIGINAL_NOTE, **GO_ORIGINAL},
    }
    document = json.dumps(json_safe(report), indent=2)
    print_table(figures, sys.stdout)
    for warning in warnings:
        print(f"WARNING: {warning}")
    print(document)
    if args.json_out is not None:
        args.json_out.write_text(document + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
