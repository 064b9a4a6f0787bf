"""The benchmark keeps working: a quick run produces its figures (values are not asserted)."""

from __future__ import annotations

from pathlib import Path

from tests.bench_runner import run_quick


def test_quick_signaler_benchmark_reports_every_figure(tmp_path: Path) -> None:
    report = run_quick("signaler.py", tmp_path)
    assert report["problems"] == []
    names = {figure["name"] for figure in report["figures"]}
    assert any("joins/s" in name for name in names)
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
