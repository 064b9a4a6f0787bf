"""The rules of a room's DHT slots, without I/O: which records count, which slot is ours, and
when to read the slots again. ``now`` (Unix seconds) is passed in; :mod:`weron.rendezvous.dht`
reads and writes the items.

Every member with the room key can write every slot, so none of this keeps out a member who
stays to fight; it keeps a member who wrote records and left from locking the room:

- A record says when it was published, not when it expires: readers count it for ``TTL``
  after that, and ignore one published more than ``CLOCK_SKEW`` in the future. A record lives
  at most ``TTL + CLOCK_SKEW`` unless its writer stays to refresh it.
- A member keeps its slot against an overwrite unless the writer outranks it there (the slot
  is the writer's preferred one and not ours, or neither's or both's and the writer's key is
  smaller): two members that picked one free slot at once settle it without a fight.
- When every slot holds a live record of another member, the stalest one is replaced: records
  written once by a member who left are the stalest, as honest members refresh theirs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from weron.rendezvous.card import Card

SLOTS: Final = 8
TTL: Final = 60.0  # a record counts for this long after its publication
CLOCK_SKEW: Final = 10.0  # how far in the future a publication time may be
REFRESH: Final = 20.0  # re-publish our record this often
POLL_MEETING: Final = 3.0  # read the slots this often while the room changes
POLL_SETTLED: Final = 30.0  # and at most this seldom once nothing changed for a while


@dataclass(frozen=True, slots=True)
class Record:
    card: Card
    published: float

    def live(self, now: float) -> bool:
        return now - TTL <= self.published <= now + CLOCK_SKEW


def preferred_slot(public_key: bytes) -> int:
    return hashlib.blake2s(public_key).digest()[0] % SLOTS


def _outranks(writer: bytes, holder: bytes, slot: int) -> bool:
    """Whether ``writer`` keeps ``slot`` against ``holder``."""
    writer_prefers = preferred_slot(writer) == slot
    if writer_prefers != (preferred_slot(holder) == slot):
        return writer_prefers
    return writer < holder


@dataclass(frozen=True, slots=True)
class SlotChoice:
    slot: int
    replaces: Card | None = None  # the live record of another member we write over


def choose_slot(
    records: Sequence[Record | None], own: bytes, current: int | None, now: float
) -> SlotChoice:
    """Where to publish our record, given what every slot holds now."""

    def free(slot: int) -> bool:
        record = records[slot]
        return record is None or not record.live(now) or record.card.public_key == own

    if current is not None:
        holder = records[current]
        if free(current):
            return SlotChoice(current)
        assert holder is not None
        if _outranks(own, holder.card.public_key, current):
            return SlotChoice(current, holder.card)
    start = preferred_slot(own)
    order = [(start + step) % SLOTS for step in range(SLOTS)]
    for slot in order:
        if free(slot):
            return SlotChoice(slot)
    stalest = min(order, key=lambda slot: _published(records[slot]))
    return SlotChoice(stalest, _card(records[stalest]))


def _published(record: Record | None) -> float:
    return record.published if record is not None else float("-inf")


def _card(record: Record | None) -> Card | None:
    return record.card if record is not None else None


class PollSchedule:
    """When to read the slots again: every ``POLL_MEETING`` seconds while cards appear or
    change, then twice as long after each read that found nothing new, up to
    ``POLL_SETTLED`` (a settled room costs the DHT a tenth of what a meeting one does)."""

    def __init__(self, now: float) -> None:
        self.interval = POLL_MEETING
        self.due = now

    def read(self, now: float, *, changed: bool) -> float:
        """A read finished (``changed``: it found a card new or changed); the next is due."""
        self.interval = POLL_MEETING if changed else min(self.interval * 2, POLL_SETTLED)
        self.due = now + self.interval
        return self.due

    def hurry(self, now: float) -> None:
        """Something changed on our side (our card): meet again at the meeting pace."""
        self.interval = POLL_MEETING
        self.due = min(self.due, now)
