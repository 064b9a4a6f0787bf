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
import json
import os
import resource
import signal
import sys
import tempfile
import time
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path
from typing import Any

import bcrypt
import uvloop

from common import RunStart, bench_parser, emit, exit_on_signals, log
from signaler_client import PASSWORD
from signaler_joins import JoinRun, measure_joins
from signaler_profile import FULL, QUICK, SCALE, Profile
from signaler_relay import WorkerConfig, measure_relay, receiver_worker
from signaler_report import GO_ORIGINAL, GO_ORIGINAL_NOTE, headline, print_table, problems
from signaler_scale import scale_main
from signaler_servers import Server, servers


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


def main() -> int:
    parser = bench_parser(__doc__, quick="small counts, for a CI smoke run")
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
    run = RunStart.now()  # before the servers start: the code they load
    with (
        tempfile.TemporaryDirectory(prefix="weron-bench-") as log_dir,
        exit_on_signals("servers", asyncio.CancelledError),  # run_all's SIGTERM handler cancels
        servers(Path(log_dir), args.before) as (ours, reference, before, outcomes),
    ):
        details = uvloop.run(run_all(profile, ours, reference, before))
    figures = headline(details, profile, args.before)
    warnings = problems(details, outcomes)
    report = {
        **run.head(
            "weron signaler vs minimal websockets relay (bench/reference_relay.py)",
            "quick" if args.quick else "full",
            websockets=version("websockets"),
            uvloop=version("uvloop"),
            nofile_limit=nofile,
            bcrypt_cost10_hash_ms=bcrypt_hash_ms(),
        ),
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
    print_table(figures, sys.stdout)
    return emit(report, args.json_out, warnings)


if __name__ == "__main__":
    sys.exit(main())
