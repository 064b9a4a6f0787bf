"""What waking a sleeping thread costs on this machine: the unit of a paced round trip's cost.

A pinger sends a byte through a pipe to a ponger blocked in ``read``, which answers through
another pipe; the pinger sleeps ``--pause`` between pings, so both sides (and, when idle, their
CPUs) are asleep when a ping starts. A round trip is two wake-ups plus four system calls; the
back-to-back figure (no pause: the other side is often still awake) is the reference. Cases:
the ponger a thread of the pinger's process or a process of its own, both pinned to the same
CPU, to different CPUs (the wake-up is an interrupt to the other CPU, which in a VM may first
have to be scheduled by the host), or left to the kernel.

Interleaved rounds, medians over rounds (the machine is shared). Python's own cost per round
trip is in every figure alike (a few microseconds).

Usage: ``.venv/bin/python bench/wakeup.py [--quick] [--json-out PATH]``; stdout gets a table,
then one JSON document.
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from common import bench_parser, emit, log, number, percentile, print_rows


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    process: bool  # the ponger in a process of its own, else a thread
    cpus: tuple[int, int] | None  # pinger's and ponger's CPU; None: the kernel chooses


def _pin(cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def _pong(cpu: int | None, ping: int, pong: int) -> None:
    _pin(cpu)
    while (byte := os.read(ping, 1)) not in (b"", b"q"):
        os.write(pong, byte)


def round_trips(case: Case, pause: float, count: int) -> list[float]:
    """``count`` round trips in microseconds, ``pause`` s apart."""
    ping_read, ping_write = os.pipe()
    pong_read, pong_write = os.pipe()
    mine, theirs = case.cpus if case.cpus is not None else (None, None)
    finish: Callable[[], object]
    if case.process:
        child = os.fork()
        if child == 0:  # pragma: no cover (the child)
            try:
                _pong(theirs, ping_read, pong_write)
            finally:
                os._exit(0)
        finish = lambda: os.waitpid(child, 0)  # noqa: E731
    else:
        thread = threading.Thread(target=_pong, args=(theirs, ping_read, pong_write))
        thread.start()
        finish = thread.join
    before = os.sched_getaffinity(0)
    _pin(mine)
    results = []
    try:
        for _ in range(count):
            if pause:
                time.sleep(pause)
            started = time.perf_counter()
            os.write(ping_write, b"x")
            os.read(pong_read, 1)
            results.append((time.perf_counter() - started) * 1e6)
    finally:
        os.write(ping_write, b"q")
        finish()
        os.sched_setaffinity(0, before)
        for fd in (ping_read, ping_write, pong_read, pong_write):
            os.close(fd)
    return results


CASES: Final = (
    Case("threads, same CPU", False, (0, 0)),
    Case("threads, other CPU", False, (0, 1)),
    Case("threads, any CPU", False, None),
    Case("processes, same CPU", True, (0, 0)),
    Case("processes, other CPU", True, (0, 1)),
    Case("processes, any CPU", True, None),
)


def main() -> int:
    parser = bench_parser(__doc__, quick="one short round: a smoke test")
    args = parser.parse_args()
    rounds, count = (1, 50) if args.quick else (5, 200)
    pauses = (0.0, 0.005, 0.02)
    cases = CASES if len(os.sched_getaffinity(0)) > 1 else [c for c in CASES if not c.cpus]
    runs: dict[tuple[str, float], list[dict[str, float]]] = {}
    for round_index in range(rounds):
        log(f"round {round_index + 1}/{rounds}")
        shift = round_index % len(cases)
        for case in [*cases[shift:], *cases[:shift]]:
            for pause in pauses:
                values = sorted(round_trips(case, pause, count))
                runs.setdefault((case.name, pause), []).append(
                    {
                        "p50_us": percentile(values, 50),
                        "mean_us": statistics.fmean(values),
                        "p90_us": percentile(values, 90),
                    }
                )
    summary: list[dict[str, Any]] = []
    for (name, pause), measured in runs.items():
        medians = {key: statistics.median(m[key] for m in measured) for key in measured[0]}
        summary.append({"case": name, "pause_s": pause, "rounds": len(measured), **medians})
    back_to_back = {row["case"]: row["p50_us"] for row in summary if row["pause_s"] == 0}
    for row in summary:  # what a paced round trip's two wake-ups add, each
        row["wakeup_us"] = (row["p50_us"] - back_to_back[row["case"]]) / 2
    header = ("case", "pause", "p50 us", "mean us", "p90 us", "per wake-up us (p50 - b2b)/2")
    cells = [
        (
            row["case"],
            f"{row['pause_s'] * 1000:g} ms",
            *(number(row[key]) for key in ("p50_us", "mean_us", "p90_us", "wakeup_us")),
        )
        for row in sorted(summary, key=lambda row: (row["case"], row["pause_s"]))
    ]
    print_rows([header, *cells], (0, 1), sys.stdout)
    report = {
        "benchmark": "wake-up cost: pipe ping-pong between threads or processes, paced",
        "mode": "quick" if args.quick else "full",
        "cpus": sorted(os.sched_getaffinity(0)),
        "loadavg": os.getloadavg(),
        "count_per_round": count,
        "summary": summary,
    }
    return emit(report, args.json_out)


if __name__ == "__main__":
    sys.exit(main())
