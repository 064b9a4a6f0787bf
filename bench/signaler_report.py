"""The report of bench/signaler.py: headline figures next to the reference and the Go original,
and what makes figures suspect."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final, TextIO

from common import number, print_rows
from signaler_profile import JOIN_GATE, Profile

# Measured earlier on this machine with the original Go weron, not in this run: context only.
GO_ORIGINAL: Final[dict[str, float]] = {
    "joins_per_s_c20": 15.0,
    "relay_10_fanout_p50_ms": 0.7,
    "relay_100_fanout_p50_ms": 4.9,
}


GO_ORIGINAL_NOTE: Final = "original Go weron, measured earlier on this machine, not in this run"


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
                f"({min(receivers, JOIN_GATE)} at once)",
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
    print_rows(rows, (0, 1), out)
