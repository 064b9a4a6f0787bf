"""The relay figures of bench/signaler.py: one sender to many receivers, fan-out and
per-receiver latency, server CPU per frame; the receivers run in a subprocess
(``--receiver-worker``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from common import HERE
from signaler_client import BenchClient, connect, join_path
from signaler_profile import JOIN_GATE, PAD, SEQ_DIGITS, Profile, summarize_ns
from signaler_servers import Target


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    ports: list[int]  # receiver n joins through ports[n % len(ports)]
    community: str
    receivers: int
    warmup: int


def _message(seq: int) -> bytes:
    """Sequence number and send time (monotonic ns: one clock for all processes on Linux)."""
    return b"%0*d %020d" % (SEQ_DIGITS, seq, time.monotonic_ns()) + PAD


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
        seq = payload[:SEQ_DIGITS]
        count = counts[seq] = counts.get(seq, 0) + 1
        if count == receivers:
            out.write(f"done {int(seq)}\n")
            out.flush()

    gate = asyncio.Semaphore(JOIN_GATE)

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
        seq = int(payload[:SEQ_DIGITS])
        if seq < config.warmup:
            continue
        latency = received - int(payload[SEQ_DIGITS + 1 : SEQ_DIGITS + 21])
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
        str(HERE / "signaler.py"),
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
