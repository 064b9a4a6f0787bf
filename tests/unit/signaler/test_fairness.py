"""The fair queue: sources take turns, and each holds a bounded share."""

from __future__ import annotations

import pytest

from weron.signaler.fairness import FairQueue, QueueFullError


def drain(queue: FairQueue[str]) -> list[str]:
    jobs = []
    while (popped := queue.pop()) is not None:
        source, job = popped
        queue.done(source)
        jobs.append(job)
    return jobs


def test_sources_take_turns() -> None:
    queue: FairQueue[str] = FairQueue(per_source=100, total=1000)
    for index in range(5):
        queue.push("flood", f"f{index}")
    queue.push("honest", "h0")
    queue.push("other", "o0")
    queue.push("honest", "h1")
    assert drain(queue) == ["f0", "h0", "o0", "f1", "h1", "f2", "f3", "f4"]


def test_a_source_holds_at_most_its_share_until_done() -> None:
    queue: FairQueue[str] = FairQueue(per_source=2, total=10)
    queue.push("a", "1")
    queue.push("a", "2")
    with pytest.raises(QueueFullError):
        queue.push("a", "3")
    queue.push("b", "1")  # others still get in
    popped = queue.pop()
    assert popped == ("a", "1")
    with pytest.raises(QueueFullError):
        queue.push("a", "3")  # running jobs still count
    queue.done("a")
    queue.push("a", "3")


def test_total_bound() -> None:
    queue: FairQueue[str] = FairQueue(per_source=5, total=3)
    for source in "abc":
        queue.push(source, source)
    with pytest.raises(QueueFullError):
        queue.push("d", "d")
    assert queue.held == 3
