"""bench/wireguard.py keeps working: a quick run reports every figure (values not asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from netlab.wglab import missing_requirements
from tests.bench_runner import run_quick

pytestmark = pytest.mark.solo  # measures: run alone


@pytest.mark.skipif(
    missing_requirements() is not None, reason=f"WireGuard lab: {missing_requirements()}"
)
def test_quick_wireguard_benchmark_reports_every_figure(tmp_path: Path) -> None:
    report = run_quick("wireguard.py", tmp_path, timeout=180)
    names = [figure["name"] for figure in report["figures"]]
    assert names[0] == "packets/s of 1,400-byte packets"
    for figure in report["figures"]:
        assert figure["ours"] is not None and figure["reference"] is not None, figure
        assert figure["ratio_ours_over_reference"] > 0
    assert report["our_handshake_s"] is not None and report["our_handshake_s"] > 0
    assert isinstance(report["target"]["met"], bool)
