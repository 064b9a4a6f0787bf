"""Benchmark of a crowd: N `weron chat` members started together, time until every member sees
every other one under its name (the full mesh), next to the time until every pair had its
WebRTC connection (the transport's share, measured in the same run from the same processes).

The ratio says where a crowd's time goes: the transport (offers, ICE, DTLS, SCTP for N·(N-1)/2
connections on one host) or the name negotiation on top (greetings, backoffs, ``--kicks``).

Usage: ``.venv/bin/python bench/mesh.py [--quick] [--sizes 5,10,20] [--rounds N]
[--json-out PATH]``. Progress goes to stderr; stdout gets a table, then one JSON document.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO, Any, Final

from common import bench_parser, emit, free_port, log, number, print_rows, source_revision

WERON: Final = [sys.executable, "-m", "weron"]
ID_CHANNEL: Final = "weron/chat/id"
LIMIT: Final = 180.0  # s: a crowd not meshed by then is reported as failed


@dataclass
class Member:
    """One chat process; its stdout and stderr lines are timestamped as they arrive."""

    process: subprocess.Popen[str]
    started: float
    lines: list[tuple[float, str]] = field(default_factory=list)  # stdout
    links: dict[str, float] = field(default_factory=dict)  # peer uuid -> first id channel

    def follow(self) -> None:
        assert self.process.stdout is not None and self.process.stderr is not None
        threading.Thread(target=self._stdout, args=(self.process.stdout,), daemon=True).start()
        threading.Thread(target=self._stderr, args=(self.process.stderr,), daemon=True).start()

    def _stdout(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def _stderr(self, stream: IO[str]) -> None:
        for line in stream:
            if '"Connected to channel"' not in line:
                continue
            record = json.loads(line)
            if record.get("channel") == ID_CHANNEL:
                self.links.setdefault(str(record.get("peer")), time.monotonic())

    def names(self) -> list[str]:
        """Every name it claimed, in order: one more after each name it gave up to an older
        member that claimed it at the same time."""
        return [
            line[:-1].strip()
            for _, line in list(self.lines)
            if line.endswith("!") and not line.startswith(("+", "-"))
        ]

    def sees(self) -> dict[str, float]:
        """Peer name -> when it was first shown as connected."""
        seen: dict[str, float] = {}
        for moment, line in list(self.lines):
            if line.startswith("+") and line.endswith("@weron/chat/primary"):
                seen.setdefault(line[1:].split("@", 1)[0], moment)
        return seen


def crowd(raddr: str, size: int, community: str) -> dict[str, float | bool]:
    names = ",".join(f"user{number}" for number in range(1, size + 1))
    env = {key: value for key, value in os.environ.items() if not key.startswith("WERON_")}
    started = time.monotonic()
    members = []
    for _ in range(size):
        process = subprocess.Popen(
            [
                *WERON, "chat", "--raddr", raddr, "--community", community,
                "--password", "pw", "--key", "key", "--names", names, "--kicks", "1s",
                "--timeout", "5s", "--ice", "", "--verbose", "6",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )  # fmt: skip
        member = Member(process, time.monotonic())
        member.follow()
        members.append(member)
    connections = full_mesh = None
    try:
        deadline = started + LIMIT
        while time.monotonic() < deadline and full_mesh is None:
            time.sleep(0.05)
            if connections is None and all(len(m.links) >= size - 1 for m in members):
                connections = max(max(m.links.values()) for m in members) - started
            if meshed(members):
                full_mesh = max(max(m.sees().values()) for m in members) - started
        frozen = sum(1 for m in members if not m.names())
        renamed = sum(max(len(m.names()) - 1, 0) for m in members)
    finally:
        for member in members:
            member.process.kill()
        for member in members:
            member.process.wait()
    return {
        "connections_s": connections if connections is not None else float("nan"),
        "full_mesh_s": full_mesh if full_mesh is not None else float("nan"),
        "meshed": full_mesh is not None,
        "unnamed_members": frozen,
        "renamed": renamed,
    }


def meshed(members: list[Member]) -> bool:
    """Every member has a name of its own, and sees every other one under its last name."""
    last = [m.names()[-1] if m.names() else None for m in members]
    if None in last or len(set(last)) < len(members):
        return False
    return all(
        m.sees().keys() >= {name for name in last if name != mine}
        for m, mine in zip(members, last, strict=True)
    )


def main() -> None:
    parser = bench_parser(__doc__, quick="3 and 5 members, one round")
    parser.add_argument("--sizes", default="5,10,20")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    sizes = [3, 5] if args.quick else [int(size) for size in args.sizes.split(",")]
    rounds = 1 if args.quick else args.rounds
    port = free_port("127.0.0.1")
    signaler = subprocess.Popen(
        [*WERON, "signaler", "--laddr", f"127.0.0.1:{port}", "--verbose", "3"],
        stderr=subprocess.DEVNULL,
    )
    rows: list[dict[str, Any]] = []
    try:
        time.sleep(1.5)
        for size in sizes:
            runs = []
            for round_number in range(rounds):
                log(f"{size} members, round {round_number + 1}/{rounds}")
                result = crowd(f"ws://127.0.0.1:{port}/", size, f"mesh{size}r{round_number}")
                log(f"  {result}")
                runs.append(result)
            meshed = [run for run in runs if run["meshed"]]
            full = statistics.median([float(r["full_mesh_s"]) for r in meshed]) if meshed else None
            links = (
                statistics.median([float(r["connections_s"]) for r in meshed]) if meshed else None
            )
            rows.append(
                {
                    "members": size,
                    "rounds": rounds,
                    "meshed_rounds": len(meshed),
                    "connections_s": links,
                    "full_mesh_s": full,
                    "full_mesh_per_connections": full / links if full and links else None,
                    "renamed": sum(int(run["renamed"]) for run in runs),
                    "runs": runs,
                }
            )
    finally:
        signaler.kill()
        signaler.wait()
    header = ("members", "meshed", "connections s", "full mesh s", "ratio", "renamed")
    cells = [
        (
            str(row["members"]),
            f"{row['meshed_rounds']}/{row['rounds']}",
            number(row["connections_s"]),
            number(row["full_mesh_s"]),
            number(row["full_mesh_per_connections"]),
            str(row["renamed"]),
        )
        for row in rows
    ]
    print_rows([header, *cells], (), sys.stdout)
    document = {
        "mode": "quick" if args.quick else "full",
        "source": source_revision(),
        "rows": rows,
    }
    emit(document, args.json_out)


if __name__ == "__main__":
    main()
