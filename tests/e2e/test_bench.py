"""The benchmarks keep working: a quick run produces its figures (values are not asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench_runner import run_quick

pytestmark = pytest.mark.solo  # measures: run alone


def test_quick_signaler_benchmark_reports_every_figure(tmp_path: Path) -> None:
    report = run_quick("signaler.py", tmp_path, "--before", "HEAD")
    assert report["problems"] == []
    names = {figure["name"] for figure in report["figures"]}
    assert any("joins/s" in name for name in names)
    assert any(name.endswith("= weron at HEAD") for name in names)
    assert any("relay to 1000" in name for name in names)
    for figure in report["figures"]:
        assert figure["ours"] is not None and figure["reference"] is not None, figure
        assert figure["ratio_ours_over_reference"] > 0


def test_quick_scale_benchmark_compares_one_and_two_instances(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    """Needs the machine's PostgreSQL and Redis (the fixtures skip without them)."""
    report = run_quick("signaler.py", tmp_path, "--scale")
    assert report["problems"] == []
    assert set(report["details"]) == {"memory x1", "pg+redis x1", "pg+redis x2"}
    names = {figure["name"] for figure in report["figures"]}
    assert "relay to 500 members: per member p99" in names
    for figure in report["figures"]:
        assert all(value is not None and value > 0 for value in figure["values"].values()), figure


def test_quick_peers_benchmark_reports_every_figure(tmp_path: Path) -> None:
    report = run_quick("peers.py", tmp_path, timeout=600)
    assert report["problems"] == [], report["problems"]
    assert report["mode"] == "quick"
    labels = [setup["label"] for setup in report["setups"]]
    assert labels == ["libdatachannel", "aiortc", "libdatachannel --webrtc-mtu 4096"]
    by_label: dict[str, set[str]] = {}
    for figure in report["figures"]:
        by_label.setdefault(figure["backend"], set()).add(figure["key"])
        assert figure["ours"] > 0 and figure["reference"] > 0, figure
        assert figure["ratio_ours_over_reference"] > 0, figure
    every = {
        *(f"throughput_{size}_mb_per_s" for size in (50000, 16384, 1200)),
        *(f"cpu_{size}_s_per_gb" for size in (50000, 16384, 1200)),
        *(f"round_trip_128_{stat}_us" for stat in ("p50", "p99", "mean")),
        "start_to_connected_s",
        "start_to_first_round_trip_s",
    }
    assert by_label["libdatachannel"] == by_label["aiortc"] == every
    assert by_label["libdatachannel --webrtc-mtu 4096"] == {
        key for key in every if key.startswith(("throughput_", "cpu_"))
    }
    targets = {target["figure"]: target for target in report["targets"]}
    assert set(targets) == {
        "throughput_50000_mb_per_s",
        "throughput_1200_mb_per_s",
        "round_trip_128_p50_us",
        "start_to_connected_s",
    }
    assert all(target["status"] in ("met", "missed") for target in targets.values())
    assert all(target["backend"] == report["default_backend"] for target in targets.values())
    latency = report["details"]["libdatachannel"]["latency"]
    assert latency["p50_us"] <= latency["p99_us"] <= latency["max_us"]


def test_quick_mesh_benchmark_meshes_every_crowd(tmp_path: Path) -> None:
    report = run_quick("mesh.py", tmp_path)
    assert [row["members"] for row in report["rows"]] == [3, 5]
    for row in report["rows"]:
        assert row["meshed_rounds"] == row["rounds"] == 1
        assert row["connections_s"] <= row["full_mesh_s"]


def test_quick_paced_benchmark_measures_weron_next_to_the_engine_floor(tmp_path: Path) -> None:
    report = run_quick("paced.py", tmp_path, "--two-process-floor", "--pin", "0/0", timeout=300)
    assert report["problems"] == [], report["problems"]
    names = ["floor", "weron", "floor 2 processes", "weron cpus 0/0", "floor 2 processes cpus 0/0"]
    assert report["contenders"] == names
    rows = {(row["pause_s"], row["contender"]): row for row in report["summary"]}
    assert set(rows) == {(pause, name) for pause in (0.005, 0.1) for name in names}
    figures = {"mean_us", "p50_us", "p90_us", "cpu_us_per_round_trip", "thread_runs_per_round_trip"}
    for row in rows.values():
        assert row["round_trips"] > 0, row
        assert 0 < row["p50_us"] <= row["p90_us"], row
        assert row["mean_us"] > 0 and row["cpu_us_per_round_trip"] > 0, row
        assert row["thread_runs_per_round_trip"] >= 2, row  # at least each side woke once
        assert set(row["ratio_over_floor"]) == set(row["ratio_over_two_process_floor"]) == figures


def test_quick_wakeup_benchmark_prices_a_wakeup(tmp_path: Path) -> None:
    report = run_quick("wakeup.py", tmp_path)
    cases = {(row["case"], row["pause_s"]) for row in report["summary"]}
    assert ("processes, any CPU", 0.005) in cases
    assert ("threads, same CPU", 0.02) in cases
    for row in report["summary"]:
        assert 0 < row["p50_us"] <= row["p90_us"], row
        if row["pause_s"] == 0:  # the reference of the paced cases
            assert row["wakeup_us"] == 0, row
