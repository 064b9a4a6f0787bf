"""The report of bench/peers.py: headline figures, the issue's targets, the Go original's figures
and what makes figures suspect."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, TextIO

from common import number, print_rows
from peers_pairs import LATENCY_BYTES, THROUGHPUT_SIZES
from weron.webrtc.backends import BACKEND_NAMES

# Measured earlier on this machine with the original Go weron, not in this run: context only.
GO_ORIGINAL: Final[dict[str, float]] = {
    "throughput_50000_mb_per_s": 20.0,
    "round_trip_128_mean_us": 580.0,
    "start_to_connected_s": 0.15,
}


GO_ORIGINAL_NOTE: Final = "original Go weron, measured earlier on this machine, not in this run"


@dataclass(frozen=True, slots=True)
class Target:
    """A goal from the issue for the default backend."""

    key: str  # a Figure key
    better: str  # "higher": ours >= value meets it; "lower": ours <= value
    value: float
    unit: str

    def met(self, ours: float) -> bool | None:
        if math.isnan(ours):
            return None
        return ours >= self.value if self.better == "higher" else ours <= self.value

    def text(self) -> str:
        return f"{'>=' if self.better == 'higher' else '<='} {self.value:g}"


TARGETS: Final = (
    Target("throughput_50000_mb_per_s", "higher", 60.0, "MB/s"),
    Target("throughput_1200_mb_per_s", "higher", 25.0, "MB/s"),
    Target("round_trip_128_p50_us", "lower", 250.0, "us"),
    Target("start_to_connected_s", "lower", 0.5, "s"),
)


@dataclass(frozen=True, slots=True)
class Figure:
    """One headline number for one backend, ours and the reference's."""

    key: str
    name: str
    backend: str
    unit: str
    better: str  # "higher" or "lower"
    ours: float
    reference: float
    go_original: float | None = None
    target: str | None = None  # e.g. ">= 60", for the default backend
    target_met: bool | None = None

    @property
    def ratio(self) -> float:
        return self.ours / self.reference if self.reference else math.nan

    @property
    def status(self) -> str:
        if self.target is None:
            return ""
        return {True: "met", False: "MISSED", None: "not measured"}[self.target_met]


def _value(results: dict[str, Any], scenario: str, key: str) -> float:
    value = results.get(scenario, {}).get(key)
    return float(value) if isinstance(value, int | float) else math.nan


def headline(
    details: dict[str, dict[str, Any]], labels: Sequence[str], default_backend: str
) -> list[Figure]:
    """The table's figures for each measured setup (by label); targets for the default
    backend's own row only."""
    reference = details["reference"]
    rows: list[tuple[str, str, str, str, str, str, str | None]] = []
    # (key, name, unit, better, scenario, field, go original key)
    for size, _ in THROUGHPUT_SIZES:
        rows.append(
            (
                f"throughput_{size}_mb_per_s",
                f"throughput {size:,} B messages (median batch)",
                "MB/s",
                "higher",
                f"throughput_{size}",
                "median_mb_per_s",
                f"throughput_{size}_mb_per_s",
            )
        )
    for size, _ in THROUGHPUT_SIZES:
        rows.append(
            (
                f"cpu_{size}_s_per_gb",
                f"CPU of both peers per GB, {size:,} B messages",
                "s/GB",
                "lower",
                f"throughput_{size}",
                "cpu_s_per_gb",
                None,
            )
        )
    for stat, label in (("p50", "p50"), ("p99", "p99"), ("mean", "mean")):
        rows.append(
            (
                f"round_trip_{LATENCY_BYTES}_{stat}_us",
                f"round trip {LATENCY_BYTES} B back to back, {label}",
                "us",
                "lower",
                "latency",
                f"{stat}_us",
                f"round_trip_{LATENCY_BYTES}_{stat}_us",
            )
        )
    rows.append(
        (
            "start_to_connected_s",
            "process start to connected peer (median)",
            "s",
            "lower",
            "connect",
            "median_connected_peer_s",
            "start_to_connected_s",
        )
    )
    rows.append(
        (
            "start_to_first_round_trip_s",
            "process start to first round trip (median)",
            "s",
            "lower",
            "connect",
            "median_first_round_trip_s",
            None,
        )
    )
    targets = {target.key: target for target in TARGETS}
    figures: list[Figure] = []
    for label in labels:
        ours = details.get(label, {})
        for key, name, unit, better, scenario, value_key, go_key in rows:
            if ours and scenario not in ours:
                continue  # not measured for this setup (e.g. round trips with --webrtc-mtu)
            value = _value(ours, scenario, value_key)
            target = targets.get(key) if label == default_backend else None
            figures.append(
                Figure(
                    key=key,
                    name=name,
                    backend=label,
                    unit=unit,
                    better=better,
                    ours=value,
                    reference=(
                        _value(ours, "reference_latency", value_key)
                        if scenario == "latency"
                        else _value(reference, scenario, value_key)
                    ),
                    # Go's figures were measured with its defaults: not next to a variant's.
                    go_original=GO_ORIGINAL.get(go_key)
                    if go_key and label in BACKEND_NAMES
                    else None,
                    target=target.text() if target else None,
                    target_met=target.met(value) if target else None,
                )
            )
    return figures


def target_report(figures: list[Figure], default_backend: str) -> list[dict[str, Any]]:
    by_key = {f.key: f for f in figures if f.backend == default_backend}
    report = []
    for target in TARGETS:
        figure = by_key.get(target.key)
        ours = figure.ours if figure is not None else math.nan
        met = target.met(ours)
        report.append(
            {
                "figure": target.key,
                "backend": default_backend,
                "target": f"{target.text()} {target.unit}",
                "ours": ours,
                "status": {True: "met", False: "missed", None: "not measured"}[met],
            }
        )
    return report


def problems(details: dict[str, dict[str, Any]], outcomes: list[dict[str, Any]]) -> list[str]:
    """Anything that makes figures suspect: failed scenarios, unclean exits, error logs."""
    found: list[str] = []
    for name, scenarios in details.items():
        for scenario, result in scenarios.items():
            if "error" in result:
                found.append(f"{name} {scenario}: {result['error'].splitlines()[0]}")
    for outcome in outcomes:
        if outcome["exit_code"] not in (0, 130):
            found.append(f"{outcome['name']} exited with status {outcome['exit_code']}")
        if outcome["errors"]:
            found.append(f"{outcome['name']} logged errors: {outcome['errors'][0][:200]}")
    return found


def print_table(figures: list[Figure], out: TextIO) -> None:
    header = (
        "figure",
        "unit",
        "backend",
        "weron",
        "reference",
        "ours/ref",
        "better",
        "Go original",
        "target",
        "status",
    )
    rows = [header]
    rows += [
        (
            figure.name,
            figure.unit,
            figure.backend,
            number(figure.ours),
            number(figure.reference),
            number(figure.ratio),
            figure.better,
            number(figure.go_original),
            figure.target or "",
            figure.status,
        )
        for figure in figures
    ]
    print_rows(rows, (0, 1, 2, 6, 8, 9), out)
