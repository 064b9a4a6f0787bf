"""Connection limits: sources, the per-source count, and the rate-limited drop report."""

from __future__ import annotations

import pytest

from weron.signaler.limits import DropReport, SourceLimit, source_of


@pytest.mark.parametrize(
    ("host", "source"),
    [
        ("127.0.0.2", "127.0.0.2"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::9", "2001:db8:1:2::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("/run/weron.sock", "/run/weron.sock"),
    ],
)
def test_source_of(host: str, source: str) -> None:
    assert source_of(host) == source


def test_source_limit_counts_per_source() -> None:
    limit = SourceLimit(2)
    assert limit.admit("a") and limit.admit("a")
    assert not limit.admit("a")
    assert limit.admit("b")
    limit.release("a")
    assert limit.admit("a")
    assert not limit.admit("a")


def test_zero_means_no_limit() -> None:
    limit = SourceLimit(0)
    assert all(limit.admit("a") for _ in range(10_000))


def test_first_drop_is_reported_at_once_then_at_most_every_interval() -> None:
    report = DropReport(interval=10.0)
    assert report.record("idle_timeout", "a", now=100.0) == 0.0
    assert report.take(now=100.0) == ({"idle_timeout": 1}, 1)
    assert report.record("idle_timeout", "a", now=101.0) == 9.0  # report due at 110
    assert report.record("head_timeout", "b", now=102.0) is None  # already scheduled
    assert report.record("idle_timeout", "a", now=103.0) is None
    assert report.take(now=110.0) == ({"idle_timeout": 2, "head_timeout": 1}, 2)
    assert report.record("source_connections", "c", now=125.0) == 0.0
