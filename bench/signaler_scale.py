"""The scaling figures of bench/signaler.py (``--scale``): one in-memory instance, one and two
instances on PostgreSQL + Redis."""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import signal
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

import uvloop

from common import RunStart, emit, exit_on_signals, log, number, print_rows
from signaler_joins import measure_joins
from signaler_profile import SCALE, SCALE_QUICK, Profile
from signaler_relay import measure_relay
from signaler_report import problems
from signaler_servers import SCALE_CONFIGS, Cluster, start_cluster


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
    print_rows(rows, (0, 1), out)


def scale_main(args: argparse.Namespace, nofile: int) -> int:
    profile = SCALE_QUICK if args.quick else SCALE
    run = RunStart.now()
    details: dict[str, Any] = {}
    outcomes: dict[str, dict[str, Any]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="weron-bench-") as log_dir,
        exit_on_signals("servers", asyncio.CancelledError),
    ):
        for config in SCALE_CONFIGS:
            with start_cluster(config, args, Path(log_dir), outcomes) as cluster:
                details[config.name] = uvloop.run(measure_cluster(profile, cluster))
    figures = scale_figures(details, profile)
    warnings = problems(details, outcomes)
    report = {
        **run.head(
            "weron signaler scaling out: 1 in-memory instance (reference), 1 and 2 instances "
            "sharing PostgreSQL and Redis",
            "scale-quick" if args.quick else "scale",
            nofile_limit=nofile,
        ),
        "profile": asdict(profile),
        "figures": figures,
        "problems": warnings,
        "details": details,
        "servers": outcomes,
    }
    print_scale_table(figures, sys.stdout)
    return emit(report, args.json_out, warnings)
