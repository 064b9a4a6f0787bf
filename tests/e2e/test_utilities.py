"""`weron utility latency` and `weron utility throughput` between real processes."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.e2e.processes import WERON, SignalerProcess, skip_unless_available

DURATION = r"[0-9.]+(?:ns|µs|ms|s)"
PACKET = re.compile(rf"^128 B written and acknowledged in {DURATION}$")
AVERAGE = re.compile(
    rf"^Average latency: {DURATION} \((\d+) packets written\) Min: {DURATION} Max: {DURATION}$"
)
BATCH = re.compile(rf"^[0-9.]+ MB/s \([0-9.]+ Mb/s\) \(1 MB read in {DURATION}\)$")
THROUGHPUT = re.compile(
    rf"^Average throughput: [0-9.]+ MB/s \([0-9.]+ Mb/s\) \((\d+) MB written in {DURATION}\) "
    r"Min: [0-9.]+ MB/s Max: [0-9.]+ MB/s$"
)
READ_TOTALS = re.compile(
    rf"^Average throughput: [0-9.]+ MB/s \([0-9.]+ Mb/s\) \((\d+) MB read in {DURATION}\) "
    r"Min: [0-9.]+ MB/s Max: [0-9.]+ MB/s$"
)
BACKENDS = ["libdatachannel", "aiortc"]


def utility(
    signaler: SignalerProcess, name: str, *args: str, backend: str
) -> subprocess.Popen[str]:
    skip_unless_available(backend)
    command = [
        *WERON,
        "utility",
        name,
        "--raddr",
        signaler.ws_url,
        "--community",
        name,
        "--password",
        "pw",
        "--key",
        "k",
        "--ice",
        "",
        "--backend",
        backend,
        *args,
    ]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@contextmanager
def server(
    signaler: SignalerProcess, name: str, *args: str, backend: str
) -> Iterator[subprocess.Popen[str]]:
    process = utility(signaler, name, "--server", *args, backend=backend)
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def read_until(process: subprocess.Popen[str], wanted: str, *, stderr: bool = False) -> str:
    """What ``process`` printed on stdout (or stderr) up to the end of the first line with
    ``wanted``: a test waits for what it needs to have happened (connected, measuring)
    instead of sleeping for as long as that takes on an idle machine. Read from the
    descriptor, past the text wrapper, so that a later ``communicate()`` gets the rest (the
    caller puts the two together). A process that prints no such line within 60 s (only a
    hang guard), or ends first, is killed: it must not outlive the test."""
    pipe = process.stderr if stderr else process.stdout
    assert pipe is not None
    descriptor, read = pipe.fileno(), b""
    deadline = time.monotonic() + 60
    while wanted.encode() not in read or not read.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        chunk = b""
        if remaining > 0 and select.select([descriptor], [], [], remaining)[0]:
            chunk = os.read(descriptor, 65536)
        if not chunk:
            process.kill()
            process.communicate()
            raise AssertionError(f"{wanted!r} not printed: {read[-1500:]!r}")
        read += chunk
    return read.decode()


def interrupt_after(
    process: subprocess.Popen[str], seconds: float, signum: int = signal.SIGINT
) -> tuple[str, str]:
    """Ctrl-C (or SIGTERM) after ``seconds``: the client prints its totals and exits."""
    time.sleep(seconds)
    process.send_signal(signum)
    try:
        out, err = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()  # a client that ignored the signal must not outlive the test
        out, err = process.communicate()
        raise AssertionError(
            f"still running 20 s after {signum!r}: {out[-500:]} {err[-1500:]}"
        ) from None
    assert "Traceback" not in err, err
    return out, err


@pytest.mark.parametrize("backend", BACKENDS)
def test_latency_lines_and_totals(signaler: SignalerProcess, backend: str) -> None:
    with server(signaler, "latency", backend=backend):
        client = utility(signaler, "latency", "--pause", "100ms", backend=backend)
        out, _ = interrupt_after(client, 6)
    lines = out.splitlines()
    packets = [line for line in lines if line.startswith("128 B")]
    assert len(packets) >= 3, out
    assert all(PACKET.match(line) for line in packets), out
    average = next(AVERAGE.match(line) for line in lines if line.startswith("Average"))
    assert average is not None and int(average.group(1)) == len(packets)
    assert lines[-1].startswith("Percentiles: p50 ")


def test_latency_json_and_successive_clients(signaler: SignalerProcess) -> None:
    with server(signaler, "latency", backend="libdatachannel"):
        for _ in range(2):  # the server keeps serving one client after another
            client = utility(
                signaler, "latency", "--pause", "50ms", "--json", backend="libdatachannel"
            )
            out, _ = interrupt_after(client, 5)
            documents = [json.loads(line) for line in out.splitlines()]
            packets = [d for d in documents if d["type"] == "packet"]
            assert packets and all(d["bytes"] == 128 and d["round_trip_us"] > 0 for d in packets)
            totals = documents[-1]
            assert totals["type"] == "totals" and totals["packets"] == len(packets)
            assert 0 < totals["min"] <= totals["p50"] <= totals["p99"] <= totals["max"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_throughput_batches_and_totals(signaler: SignalerProcess, backend: str) -> None:
    small = ("--packet-count", "100", "--packet-length", "10000")
    with server(signaler, "throughput", *small, backend=backend):
        client = utility(signaler, "throughput", *small, backend=backend)
        out, _ = interrupt_after(client, 8)
    lines = out.splitlines()
    batches = [line for line in lines if "MB read in" in line]
    assert batches and all(BATCH.match(line) for line in batches), out
    totals = THROUGHPUT.match(lines[-1])
    assert totals is not None, out
    assert int(totals.group(1)) == len(batches)  # 1 MB per batch


def test_throughput_clients_always_stop_on_ctrl_c(signaler: SignalerProcess) -> None:
    """Ctrl-C mid-transfer, again and again: each client prints its totals and exits
    (closing while data flows once left one hanging: issue 12; a hang fails
    interrupt_after). Each is interrupted once it measured a batch, a little later every time:
    a fixed 3 s from its start found some under load not even connected yet."""
    small = ("--packet-count", "100", "--packet-length", "10000")
    with server(signaler, "throughput", *small, backend="libdatachannel"):
        for attempt in range(8):
            client = utility(signaler, "throughput", *small, backend="libdatachannel")
            measuring = read_until(client, "MB read in")
            out, _ = interrupt_after(client, attempt * 0.2)
            assert THROUGHPUT.match((measuring + out).splitlines()[-1]), measuring + out


def test_a_throughput_server_prints_what_it_read_on_ctrl_c(signaler: SignalerProcess) -> None:
    small = ("--packet-count", "100", "--packet-length", "10000")
    server_process = utility(signaler, "throughput", "--server", *small, backend="libdatachannel")
    client = utility(signaler, "throughput", *small, backend="libdatachannel")
    try:
        client_out, _ = interrupt_after(client, 6)
        server_out, _ = interrupt_after(server_process, 0)
    finally:
        for process in (client, server_process):
            process.kill()
            process.wait()
    totals = READ_TOTALS.match(server_out.splitlines()[-1])
    assert totals is not None, server_out
    assert int(totals.group(1)) >= 1 and "MB/s" in client_out  # 1 MB a batch


@pytest.mark.parametrize(
    ("server_count", "client_args", "error"),
    [
        ("50", (), "the server acknowledged a batch before all our --packet-count 100 messages"),
        ("200", ("--timeout", "2s"), "no acknowledgement 2s after our --packet-count 100"),
    ],
)
def test_a_packet_count_unlike_the_servers_is_a_clear_error(
    signaler: SignalerProcess, server_count: str, client_args: tuple[str, ...], error: str
) -> None:
    """The count never travels (Go peers send none): the client finds out either way."""
    length = ("--packet-length", "10000")
    with server(
        signaler, "throughput", "--packet-count", server_count, *length, backend="libdatachannel"
    ):
        client = utility(
            signaler,
            "throughput",
            "--packet-count",
            "100",
            *length,
            *client_args,
            backend="libdatachannel",
        )
        _, err = client.communicate(timeout=60)
    assert client.returncode == 1, err
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("Error:")] == [
        next(line for line in err.splitlines() if error in line)
    ], err


def test_throughput_with_a_larger_mtu(signaler: SignalerProcess) -> None:
    """--webrtc-mtu 4096 (loopback carries it): messages of any size still arrive whole."""
    options = ("--packet-count", "20", "--packet-length", "60000", "--webrtc-mtu", "4096", "--json")
    with server(signaler, "throughput", *options, backend="libdatachannel"):
        client = utility(signaler, "throughput", *options, backend="libdatachannel")
        out, _ = interrupt_after(client, 6)
    documents = [json.loads(line) for line in out.splitlines()]
    batches = [d for d in documents if d["type"] == "batch"]
    assert batches and all(d["bytes"] == 20 * 60000 for d in batches), out
    assert documents[-1]["type"] == "totals" and documents[-1]["batches"] == len(batches)


def test_aiortc_says_it_ignores_the_mtu(signaler: SignalerProcess) -> None:
    with server(signaler, "latency", backend="aiortc"):
        client = utility(signaler, "latency", "--webrtc-mtu", "4096", backend="aiortc")
        out, err = interrupt_after(client, 4)
    assert err.count("The aiortc backend ignores --webrtc-mtu") == 1, err
    assert "Average latency" in out


def test_packet_length_beyond_the_message_limit_is_a_clear_error(
    signaler: SignalerProcess,
) -> None:
    with server(signaler, "latency", backend="libdatachannel"):
        client = utility(signaler, "latency", "--packet-length", "300000", backend="libdatachannel")
        _, err = client.communicate(timeout=60)
    assert client.returncode != 0
    assert "--packet-length 300000 is larger than the largest message" in err
    assert "Traceback" not in err


def test_server_disappearing_mid_run_is_reported(signaler: SignalerProcess) -> None:
    with server(signaler, "latency", backend="libdatachannel") as process:
        client = utility(
            signaler, "latency", "--pause", "100ms", "--timeout", "2s", backend="libdatachannel"
        )
        echoed = read_until(client, "128 B written")  # not a fixed 4 s: slow under load
        process.kill()
    out, err = interrupt_after(client, 5)  # noticed within --timeout, not WebRTC's 15-30 s
    out = echoed + out
    assert "No echo within the timeout: is the server gone?" in err, err
    assert "Disconnected from peer" in err, err
    assert "Average latency" in out


def cpu_seconds(process: subprocess.Popen[str]) -> float:
    """utime + stime of ``process`` so far (/proc/PID/stat, after "pid (comm)")."""
    fields = Path(f"/proc/{process.pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_client_left_without_signaler_and_server_waits_idle(signaler: SignalerProcess) -> None:
    """Its retry falls due while the signaler is away: it waits for the signaler to return
    instead of ticking in a tight loop (it spun at 40 % of a core, 30,000 syscalls a second)."""
    with server(signaler, "latency", backend="libdatachannel") as process:
        client = utility(
            signaler, "latency", "--pause", "100ms", "--timeout", "2s", backend="libdatachannel"
        )
        try:
            read_until(client, "128 B written")  # connected: echoes come back
            process.kill()
            signaler.stop(signal.SIGKILL)
            read_until(client, "No echo within the timeout", stderr=True)  # the link is dropped
            time.sleep(4)  # twice --timeout: the interrupted link ends, its retry falls due
            before = cpu_seconds(client)
            time.sleep(5)
            used = cpu_seconds(client) - before
        finally:
            if client.poll() is None:  # read_until killed one that did not print its line
                interrupt_after(client, 0)
    assert used < 1.0, f"{used:.2f} CPU-s in 5 s while waiting for the signaler"
