"""bench/forward.py keeps working: a quick run reports every figure (values not asserted)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from netlab.lab import lab_unavailable
from tests.bench_runner import run_quick

pytestmark = pytest.mark.solo  # measures: run alone


def test_quick_forward_benchmark_reports_every_figure(tmp_path: Path) -> None:
    if (reason := lab_unavailable()) is not None or shutil.which("iperf3") is None:
        pytest.skip(reason or "needs iperf3 (Debian package iperf3)")
    report = run_quick("forward.py", tmp_path, timeout=240)
    assert set(report["iperf3_mbits"]) == {"direct", "vpn_ip", "forward"}
    assert all(value > 0 for value in report["iperf3_mbits"].values())
    assert report["ratios_to_direct"]["direct"] == 1
