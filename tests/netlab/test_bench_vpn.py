"""bench/vpn.py keeps working: a quick run reports every figure (values not asserted)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest

from netlab.lab import lab_unavailable
from tests.bench_runner import run_quick

pytestmark = pytest.mark.solo  # measures: run alone


@pytest.mark.parametrize("vpn", ["ip", "ethernet"])
def test_quick_vpn_benchmark_reports_every_figure(tmp_path: Path, vpn: str) -> None:
    if (reason := lab_unavailable()) is not None or shutil.which("iperf3") is None:
        pytest.skip(reason or "needs iperf3 (Debian package iperf3)")
    report = run_quick("vpn.py", tmp_path, "--vpn", vpn, timeout=180)
    assert report["vpn"] == vpn
    names = ["overlay", "reference"]
    if shutil.which("wireguard-go") and shutil.which("wg"):
        names.append("wireguard_go")
    for name in names:
        figures = report["figures"][name]
        assert figures["iperf3_mbits"] > 0
        assert figures["count"] > 0 and not math.isnan(figures["p50_ms"])
        assert figures["busy_p50_ms"] > 0
    assert report["ratios"]["iperf3"] > 0
    assert report["figures"]["overlay"]["cpu_s_per_gb"] > 0
    assert set(report["ratios_overlay_over"]) == set(names) - {"overlay"}
    assert set(report["targets"]) == {"iperf3_mbits>=200", "ping_p50_ms<=0.5"}
