"""Paced round trips: ``weron utility latency`` next to the bare libdatachannel engine floor.

At a user's pace (``--pause 5ms``, ``100ms``) a round trip costs the wake-ups of threads that
slept, which back-to-back figures (bench/peers.py) hide. Three contenders, on libdatachannel:

* ``floor``: bench/reference_libdatachannel.py, two connections in one process, the echo
  inside the library's callback, no asyncio: what the engine alone costs;
* ``weron``: a ``weron utility latency --server`` and a client, through a local signaler;
* ``weron@REV`` (``--before REV``): the same with ``src`` as it was at git revision REV;
* ``floor 2 processes`` (``--two-process-floor``): the floor with each connection in a process
  of its own, as weron's peers are (they swap descriptions through files).

The machine is shared and noisy, so they are measured interleaved: each round runs every
contender at every pause, in an order rotated from round to round, and each figure is the
median over rounds of the per-round figure; ratios divide those medians. Per measurement:
round trips after a warm-up, and CPU per round trip (user+system time of every thread of the
contender's processes over the same round trips: both peers, for the floor its one process).

Usage: ``.venv/bin/python bench/paced.py [--quick] [--rounds N] [--before REV]
[--two-process-floor] [--json-out PATH]``. Progress goes to stderr; stdout gets a table, then
one JSON document.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from common import (
    HERE,
    bench_parser,
    cpu_seconds,
    emit,
    exit_on_signals,
    log,
    number,
    percentile,
    print_rows,
    source_at,
    source_revision,
    thread_runs,
)
from peers_pairs import CONNECTED, start_signaler, utility_argv
from processes import (
    Child,
    Harness,
    MeasurementError,
    Terminated,
    harness,
    raise_terminated_on_sigterm,
)

FLOOR: Final = (sys.executable, str(HERE / "reference_libdatachannel.py"))
PACKET_BYTES: Final = 128
BACKEND: Final = "libdatachannel"
TWO_PROCESS_FLOOR: Final = "floor 2 processes"
WARMUP_SECONDS: Final = 0.5  # round trips discarded after the connection opened (at least 3)


@dataclass(frozen=True, slots=True)
class Profile:
    rounds: int
    pauses: tuple[float, ...]  # seconds between pings
    seconds: dict[float, float]  # measured per pause, after the warm-up


FULL: Final = Profile(rounds=4, pauses=(0.005, 0.1), seconds={0.005: 4.0, 0.1: 10.0})
QUICK: Final = Profile(rounds=1, pauses=(0.005, 0.1), seconds={0.005: 1.0, 0.1: 1.0})


@dataclass(slots=True)
class Contender:
    """What answers the pings: a client command, and for weron a server kept up all run."""

    name: str
    env: dict[str, str]  # added to the environment of its processes
    url: str  # the signaler's
    server: Child | None = None  # none: the floor
    exchange: Path | None = None  # the floor in two processes: where they swap descriptions
    cpus: tuple[str, str] | None = None  # taskset CPU lists of the server's and the client's

    def pinned(self, argv: list[str], side: int) -> list[str]:
        return argv if self.cpus is None else ["taskset", "-c", self.cpus[side], *argv]

    @property
    def community(self) -> str:
        return f"paced-{self.name.replace('@', '-')}-{os.getpid()}"

    def latency_argv(self) -> list[str]:
        return utility_argv(
            "latency", self.url, self.community, BACKEND, ["--packet-length", str(PACKET_BYTES)]
        )

    def client_argv(self, pause: float, exchange: Path | None) -> list[str]:
        if self.server is not None:
            return [*self.latency_argv(), "--pause", f"{pause * 1000:g}ms"]
        floor = [*FLOOR, "--pause", str(pause), "--packet-length", str(PACKET_BYTES)]
        if exchange is None:
            return floor
        return [*floor, "--role", "ping", "--exchange", str(exchange)]


def start_weron(
    h: Harness, name: str, env: dict[str, str], url: str, cpus: tuple[str, str] | None = None
) -> Contender:
    contender = Contender(name, env, url, cpus=cpus)
    argv = contender.pinned([*contender.latency_argv(), "--server"], 0)
    server = h.spawn(f"{name} latency server", "server", argv, env=env)
    h.wait_for(lambda: bool(server.logs("Connected to signaler")), 30.0, "server", [server])
    contender.server = server
    return contender


def _round_trips(child: Child) -> list[float]:
    """The round trips the client wrote so far (its stdout is a file, flushed per line)."""
    assert child.stdout_path is not None
    text = child.stdout_path.read_text(errors="replace")
    return [
        float(json.loads(line)["round_trip_us"])
        for line in text.splitlines()
        if line.startswith('{"type":"packet"') and line.endswith("}")  # not cut by SIGINT
    ]


def measure(h: Harness, contender: Contender, pause: float, seconds: float) -> dict[str, Any]:
    """One client run: ``seconds`` of round trips after the warm-up, and their CPU."""
    watched: list[Child] = [] if contender.server is None else [contender.server]
    exchange = None
    if contender.exchange is not None:  # a fresh echo process, and place to meet it
        exchange = Path(tempfile.mkdtemp(dir=contender.exchange))
        argv = contender.pinned([*FLOOR, "--role", "echo", "--exchange", str(exchange)], 0)
        watched.append(h.spawn(f"{contender.name} echo", "server", argv))
    client = h.spawn(
        f"{contender.name} client {pause:g}s",
        "client",
        contender.pinned(contender.client_argv(pause, exchange), 1),
        stdout_to_file=True,
        env=contender.env,
    )
    processes = [client, *watched]
    warmup = max(3, math.ceil(WARMUP_SECONDS / pause))
    try:
        h.wait_for(lambda: bool(client.logs(CONNECTED)), 30.0, "connected peer", processes)
        h.wait_for(lambda: len(_round_trips(client)) >= warmup, 30.0, "warm-up", processes)
        first = len(_round_trips(client))
        cpu_first = sum(cpu_seconds(child.pid) for child in processes)
        runs_first = sum(thread_runs(child.pid) for child in processes)
        h.sleep(seconds, processes)
        last = len(_round_trips(client))
        cpu_last = sum(cpu_seconds(child.pid) for child in processes)
        runs_last = sum(thread_runs(child.pid) for child in processes)
    finally:
        h.stop(client)
        if exchange is not None:
            h.stop(watched[-1])
    kept = sorted(_round_trips(client)[first:last])
    if len(kept) < 3:
        raise MeasurementError(f"only {len(kept)} round trips in {seconds:g} s")
    return {
        "round_trips": len(kept),
        "mean_us": statistics.fmean(kept),
        "p50_us": percentile(kept, 50),
        "p90_us": percentile(kept, 90),
        "p99_us": percentile(kept, 99),
        "cpu_us_per_round_trip": (cpu_last - cpu_first) / len(kept) * 1e6,
        "thread_runs_per_round_trip": (runs_last - runs_first) / len(kept),
    }


STATS: Final = (
    "mean_us",
    "p50_us",
    "p90_us",
    "cpu_us_per_round_trip",
    "thread_runs_per_round_trip",
)


def summarise(
    measurements: list[dict[str, Any]], names: list[str], pauses: tuple[float, ...]
) -> list[dict[str, Any]]:
    """Per pause and contender: the median over rounds of each figure, and its ratio to the
    floor's (and, with a weron@REV contender, weron's to it)."""
    rows = []
    for pause in pauses:
        medians: dict[str, dict[str, float]] = {}
        for name in names:
            runs = [m for m in measurements if m["contender"] == name and m["pause_s"] == pause]
            medians[name] = {
                stat: statistics.median(m[stat] for m in runs) if runs else math.nan
                for stat in STATS
            }
            rows.append(
                {
                    "pause_s": pause,
                    "contender": name,
                    "rounds": len(runs),
                    "round_trips": sum(m["round_trips"] for m in runs),
                    **medians[name],
                    "ratio_over_floor": _ratios(medians[name], medians["floor"]),
                }
            )
        for row in rows[-len(names) :]:
            for other in names[2:]:  # weron@REV, the two-process floor: weron's over theirs
                if row["contender"] == "weron":
                    row[f"ratio_over_{other}"] = _ratios(medians["weron"], medians[other])
            if TWO_PROCESS_FLOOR in medians:  # every contender's, pinned ones too
                row["ratio_over_two_process_floor"] = _ratios(
                    medians[row["contender"]], medians[TWO_PROCESS_FLOOR]
                )
    return rows


def _ratios(ours: dict[str, float], theirs: dict[str, float]) -> dict[str, float]:
    return {stat: ours[stat] / theirs[stat] if theirs[stat] else math.nan for stat in STATS}


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        "pause",
        "contender",
        "mean us",
        "p50 us",
        "p90 us",
        "CPU us/rt",
        "runs/rt",
        "mean/floor",
        "mean/floor 2 proc.",
    )
    cells = [
        (
            f"{row['pause_s'] * 1000:g} ms",
            row["contender"],
            *(number(row[stat]) for stat in STATS),
            number(row["ratio_over_floor"]["mean_us"]),
            number(row.get("ratio_over_two_process_floor", {}).get("mean_us", math.nan)),
        )
        for row in rows
    ]
    print_rows([header, *cells], (0, 1), sys.stdout)


def _cpu_lists(pin: str) -> tuple[str, str]:
    server, _, client = pin.partition("/")
    return server, client or server


def main() -> int:
    parser = bench_parser(__doc__, quick="one short round: a smoke test", before=True)
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default: 4, quick 1)")
    parser.add_argument(
        "--two-process-floor",
        action="store_true",
        help="also the floor with each connection in a process of its own, as weron's peers are",
    )
    parser.add_argument(
        "--pin",
        action="append",
        default=[],
        metavar="SERVER/CLIENT",
        help="also weron (and with --two-process-floor the two-process floor) with the server's "
        "and the client's processes pinned to these CPU lists, e.g. 0/0 or 0/1 (repeatable)",
    )
    args = parser.parse_args()
    pins = [_cpu_lists(pin) for pin in args.pin]
    profile = QUICK if args.quick else FULL
    rounds = args.rounds or profile.rounds
    raise_terminated_on_sigterm()
    started_at = datetime.datetime.now(datetime.UTC)
    revision = source_revision()
    measurements: list[dict[str, Any]] = []
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="weron-bench-paced-") as log_dir:
        try:
            with exit_on_signals("every process", Terminated), harness(Path(log_dir)) as h:
                _signaler, url = start_signaler(h)
                contenders = [Contender("floor", {}, url), start_weron(h, "weron", {}, url)]
                if args.two_process_floor:
                    exchange = Path(log_dir)
                    contenders.append(Contender(TWO_PROCESS_FLOOR, {}, url, None, exchange))
                for server_cpus, client_cpus in pins:
                    cpus = (server_cpus, client_cpus)
                    where = f"cpus {server_cpus}/{client_cpus}"
                    contenders.append(start_weron(h, f"weron {where}", {}, url, cpus))
                    if args.two_process_floor:
                        floor = Contender(f"{TWO_PROCESS_FLOOR} {where}", {}, url, None, exchange)
                        floor.cpus = cpus
                        contenders.append(floor)
                if args.before:
                    source = source_at(args.before, Path(log_dir) / "before")
                    env = {"PYTHONPATH": str(source)}
                    contenders.append(start_weron(h, f"weron@{args.before}", env, url))
                for round_index in range(rounds):
                    shift = round_index % len(contenders)
                    order = contenders[shift:] + contenders[:shift]
                    for pause in profile.pauses:
                        for contender in order:
                            what = f"round {round_index + 1}/{rounds}, {contender.name}"
                            log(f"{what}, pause {pause:g} s")
                            try:
                                result = measure(h, contender, pause, profile.seconds[pause])
                            except MeasurementError as exc:
                                log(f"FAILED: {what}: {exc}")
                                failures.append(f"{what}, pause {pause:g} s: {exc}"[:2000])
                                continue
                            measurements.append(
                                {
                                    "round": round_index,
                                    "pause_s": pause,
                                    "contender": contender.name,
                                    **result,
                                }
                            )
        except MeasurementError as exc:
            log(f"could not start: {exc}")
            return 1
    names = [contender.name for contender in contenders]
    rows = summarise(measurements, names, profile.pauses)
    report = {
        "benchmark": "weron utility latency at a user's pace vs the bare libdatachannel echo "
        "(bench/reference_libdatachannel.py), interleaved in one run",
        "mode": "quick" if args.quick else "full",
        "started_at": started_at.isoformat(timespec="seconds"),
        "source": revision,
        "packet_bytes": PACKET_BYTES,
        "backend": BACKEND,
        "rounds": rounds,
        "contenders": names,
        "summary": rows,
        "measurements": measurements,
        "problems": failures,
    }
    print_table(rows)
    return emit(report, args.json_out)


if __name__ == "__main__":
    sys.exit(main())
