"""The rules of a room's DHT slots, with ``now`` passed in: records that count, the slot a
member takes or keeps, and the reading schedule."""

from __future__ import annotations

import pytest

from weron.rendezvous.card import Card
from weron.rendezvous.slots import (
    CLOCK_SKEW,
    POLL_MEETING,
    POLL_SETTLED,
    SLOTS,
    TTL,
    PollSchedule,
    Record,
    SlotChoice,
    choose_slot,
    preferred_slot,
)
from weron.wireguard.crypto import PrivateKey
from weron.wireguard.nat.paths import Candidate, Kind

NOW = 1_900_000_000.0


def card() -> Card:
    return Card(PrivateKey.generate().public, (Candidate(Kind.HOST, ("192.0.2.1", 4000)),))


def key_preferring(slot: int) -> Card:
    while True:
        member = card()
        if preferred_slot(member.public_key) == slot:
            return member


def test_a_record_counts_for_ttl_after_its_publication_and_not_from_the_future() -> None:
    member = card()
    assert Record(member, NOW).live(NOW)
    assert Record(member, NOW - TTL).live(NOW)
    assert not Record(member, NOW - TTL - 1).live(NOW)
    assert Record(member, NOW + CLOCK_SKEW).live(NOW)
    # "expires in ten years" can no longer be written: a far future publication is ignored
    assert not Record(member, NOW + 10 * 365 * 86400).live(NOW)


def test_a_newcomer_takes_the_first_free_slot_from_its_preferred_one() -> None:
    newcomer = key_preferring(6)
    records: list[Record | None] = [None] * SLOTS
    records[6] = Record(card(), NOW)  # live, another member's
    records[7] = Record(card(), NOW - TTL - 5)  # stale: free
    assert choose_slot(records, newcomer.public_key, None, NOW) == SlotChoice(7)


def test_a_room_filled_with_live_fake_records_loses_the_stalest_one() -> None:
    """The insider lock: every slot holds a live record of someone else. The stalest goes,
    so a member who wrote records once and left cannot keep honest members apart."""
    newcomer = card()
    records: list[Record | None] = [Record(card(), NOW - 10) for _ in range(SLOTS)]
    records[2] = Record(card(), NOW - 50)
    choice = choose_slot(records, newcomer.public_key, None, NOW)
    assert choice.slot == 2 and choice.replaces == records[2].card  # type: ignore[union-attr]


def test_two_members_in_one_slot_settle_it_without_a_fight() -> None:
    """Whoever reads the other's record in the slot both took: exactly one keeps it."""
    first, second = key_preferring(3), key_preferring(3)
    keeper = min(first, second, key=lambda member: member.public_key)
    for member, other in ((first, second), (second, first)):
        records: list[Record | None] = [None] * SLOTS
        records[3] = Record(other, NOW)
        choice = choose_slot(records, member.public_key, 3, NOW)
        if member is keeper:
            assert choice == SlotChoice(3, other)  # written over: our slot is kept alive
        else:
            assert choice.slot != 3 and choice.replaces is None


def test_the_member_whose_preferred_slot_it_is_keeps_it() -> None:
    owner, visitor = key_preferring(5), key_preferring(1)
    records: list[Record | None] = [None] * SLOTS
    records[5] = Record(visitor, NOW)
    assert choose_slot(records, owner.public_key, 5, NOW) == SlotChoice(5, visitor)
    records[5] = Record(owner, NOW)
    assert choose_slot(records, visitor.public_key, 5, NOW).slot != 5


def test_our_own_record_or_an_empty_slot_keeps_us_where_we_are() -> None:
    member = card()
    records: list[Record | None] = [None] * SLOTS
    assert choose_slot(records, member.public_key, 4, NOW) == SlotChoice(4)
    records[4] = Record(member, NOW - 5)
    assert choose_slot(records, member.public_key, 4, NOW) == SlotChoice(4)


@pytest.mark.parametrize("changes", [[False] * 6, [False, False, True, False]])
def test_reading_slows_down_while_nothing_changes_and_speeds_up_on_a_change(
    changes: list[bool],
) -> None:
    schedule = PollSchedule(NOW)
    assert schedule.due == NOW
    now = NOW
    intervals = []
    for changed in changes:
        now = schedule.read(now, changed=changed)
        intervals.append(schedule.interval)
    expected: list[float] = []
    interval = POLL_MEETING
    for changed in changes:
        interval = POLL_MEETING if changed else min(interval * 2, POLL_SETTLED)
        expected.append(interval)
    assert intervals == expected
    assert max(intervals) <= POLL_SETTLED


def test_a_settled_room_reads_a_tenth_as_often_and_our_changes_hurry_it() -> None:
    schedule = PollSchedule(NOW)
    now = NOW
    for _ in range(10):
        now = schedule.read(now, changed=False)
    assert schedule.interval == POLL_SETTLED == 10 * POLL_MEETING
    schedule.hurry(now - 20)
    assert schedule.due == now - 20 and schedule.interval == POLL_MEETING
