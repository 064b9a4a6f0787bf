"""The benchmarks keep working: a quick run produces its figures (values are not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "signaler.py"
PEERS_BENCH = BENCH.with_name("peers.py")


def test_quick_signaler_benchmark_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json-out", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["problems"] == []
    names = {figure["name"] for figure in report["figures"]}
    assert any("joins/s" in name for name in names)
    assert any("relay to 1000" in name for name in names)
    for figure in report["figures"]:
        assert figure["ours"] is not None and figure["reference"] is not None, figure
        assert figure["ratio_ours_over_reference"] > 0


def test_quick_peers_benchmark_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "peers.json"
    result = subprocess.run(
        [sys.executable, str(PEERS_BENCH), "--quick", "--json-out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["problems"] == [], report["problems"]
    assert report["mode"] == "quick"
    labels = [setup["label"] for setup in report["setups"]]
    assert labels == ["libdatachannel", "aiortc", "libdatachannel --mtu 4096"]
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
    assert by_label["libdatachannel --mtu 4096"] == {
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
