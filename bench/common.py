"""What the benchmarks share: the options every one takes, progress lines, percentiles, number
formatting, the report (its head, a table, warnings, one JSON document), JSON safety, free
ports, CPU time of processes and which source was measured."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import math
import os
import platform
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

HERE = Path(__file__).resolve().parent


def bench_parser(doc: str, quick: str, before: bool = False) -> argparse.ArgumentParser:
    """A benchmark's command line with the options they all take: ``--quick`` (``quick`` says
    what it shortens) and ``--json-out``; with ``before``, ``--before REV`` too."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--json-out", type=Path, help="also write the JSON document here")
    if before:
        parser.add_argument("--before", metavar="REV", help="also measure weron's src at REV")
    return parser


def log(message: str) -> None:
    """Progress on stderr; stdout is for the table and the JSON document."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values (NaN when there are none)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def number(value: float | None) -> str:
    """A table cell: three significant digits, whole numbers from 100 on, '-' for none."""
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def print_rows(rows: Sequence[Sequence[str]], left: Collection[int], out: TextIO) -> None:
    """An aligned table: the first row is the header, underlined; the columns numbered in
    ``left`` are aligned left (names), the others right (numbers)."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for index, row in enumerate(rows):
        cells = [
            cell.ljust(width) if column in left else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip(), file=out)
        if index == 0:
            print("  ".join("-" * width for width in widths), file=out)


@contextlib.contextmanager
def exit_on_signals(stopped: str, terminated: type[BaseException]) -> Iterator[None]:
    """Ctrl-C and SIGTERM (which the benchmark turns into ``terminated``) end it with the
    shell's statuses, 130 and 143, once the ``with`` blocks inside have stopped ``stopped``."""
    try:
        yield
    except KeyboardInterrupt:
        log(f"interrupted (SIGINT); {stopped} stopped")
        raise SystemExit(130) from None
    except terminated:
        log(f"terminated (SIGTERM); {stopped} stopped")
        raise SystemExit(143) from None


@dataclass(frozen=True, slots=True)
class RunStart:
    """A run as it began, taken before its first process starts: the report's head compares
    the machine's load then and at the end, and names the source the processes loaded."""

    at: datetime.datetime
    monotonic: float
    load: tuple[float, float, float]
    source: dict[str, Any]

    @classmethod
    def now(cls) -> RunStart:
        return cls(
            datetime.datetime.now(datetime.UTC),
            time.monotonic(),
            os.getloadavg(),
            source_revision(),
        )

    def head(self, benchmark: str, mode: str, **machine: Any) -> dict[str, Any]:
        """The report's first keys, once the run is over: what ran, how, when, how long, on
        what machine (``machine`` adds to what every run says of it), from which source."""
        return {
            "benchmark": benchmark,
            "mode": mode,
            "started": self.at.isoformat(timespec="seconds"),
            "duration_s": round(time.monotonic() - self.monotonic, 1),
            "machine": {
                "cpus": os.cpu_count(),
                "loadavg_before": self.load,
                "loadavg_after": os.getloadavg(),
                "python": platform.python_version(),
                **machine,
            },
            "source": self.source,
        }


def emit(report: dict[str, Any], json_out: Path | None, warnings: Sequence[str] = ()) -> int:
    """The end of every benchmark, after its table: a line per warning, then the JSON document
    on stdout and in ``json_out``. The exit status: 1 when ``json_out`` cannot be written."""
    for warning in warnings:
        print(f"WARNING: {warning}")
    document = json.dumps(json_safe(report), indent=2)
    print(document)
    if json_out is not None:
        try:
            json_out.write_text(document + "\n")
        except OSError as exc:
            log(f"cannot write {json_out}: {exc}")
            return 1
    return 0


def json_safe(value: Any) -> Any:
    """NaN is not JSON: write null instead; other floats rounded to 4 decimals."""
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 4)
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """CPU time of every live thread of ``pid`` (/proc/PID/task/*/schedstat, in ns): finer than
    utime+stime's clock ticks (10 ms), too coarse for a short measurement."""
    return _schedstat(pid, 0) / 1e9


def thread_runs(pid: int) -> int:
    """How many times the threads of ``pid`` were put on a CPU (schedstat's third field): at a
    slow pace nearly every one is a wake-up of a thread that slept, the cost of a paced path."""
    return _schedstat(pid, 2)


def _schedstat(pid: int, field: int) -> int:
    total = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        with contextlib.suppress(OSError):  # a thread that just ended
            total += int(stat.read_text().split()[field])
    return total


def source_revision() -> dict[str, Any]:
    """Which weron was measured: the commit, and whether src/ had uncommitted changes."""

    def git(*argv: str) -> str | None:
        try:
            return subprocess.run(
                ["git", *argv], cwd=HERE, capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    status = git("status", "--porcelain", "--", "../src")
    return {
        "commit": git("rev-parse", "HEAD"),
        "src_modified": bool(status) if status is not None else None,
    }


def source_at(revision: str, directory: Path) -> Path:
    """The ``src`` directory of the repository at ``revision``, extracted into ``directory``."""
    archive = subprocess.run(
        ["git", "-C", str(HERE.parent), "archive", "--format=tar", revision, "src"],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(directory, filter="data")
    return directory / "src"
