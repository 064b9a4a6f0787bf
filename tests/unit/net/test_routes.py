"""First come, first served: a key held by a live holder is never taken by a later one."""

from __future__ import annotations

from weron.net.routes import RouteTable

A, B = b"\x0a\x00\x00\x02", b"\x0a\x00\x00\x03"


class Holder:
    """Holders are told apart by identity, as the forwarder's links are."""


def test_a_later_holder_waits_for_the_keys_someone_holds() -> None:
    table = RouteTable[Holder]()
    first, impostor = Holder(), Holder()
    assert table.add(first, [A]) == []
    assert table.add(impostor, [A, B]) == [A]
    assert table.current == {A: first, B: impostor}


def test_when_the_later_holder_leaves_the_route_stays_with_the_first() -> None:
    table = RouteTable[Holder]()
    first, impostor = Holder(), Holder()
    table.add(first, [A])
    table.add(impostor, [A])
    table.remove(impostor, [A])
    assert table.current == {A: first}
    table.remove(first, [A])
    assert table.current == {}


def test_when_the_first_holder_leaves_the_next_in_line_gets_the_key() -> None:
    """A member that reconnected before its old link was known to be dead."""
    table = RouteTable[Holder]()
    old, new, third = Holder(), Holder(), Holder()
    table.add(old, [A])
    table.add(new, [A])
    table.add(third, [A])
    table.remove(old, [A])
    assert table.current[A] is new
    table.remove(new, [A])
    assert table.current[A] is third


def test_repeated_keys_and_repeated_adds_count_once() -> None:
    table = RouteTable[Holder]()
    holder = Holder()
    assert table.add(holder, [A, A]) == []
    assert table.add(holder, [A]) == []
    table.remove(holder, [A])
    assert table.current == {}
    table.remove(holder, [A])  # unknown keys are ignored
