"""Delivery of gonet's chat lines, without I/O: the datagrams inside the tunnels are lost while
a path heals (a NAT forgot its mapping, a relay is allocated again), so each line is
acknowledged by every member it went to and sent again until then; a member that has not
acknowledged it within the timeout is reported. Copies go per member, all its lines at once
in the order said (so they arrive in that order once the path is back), less and less often
while nothing is acknowledged. Receivers acknowledge every copy (an ack can be lost too) but
show a line once, whatever the copies.

The app passes the time in, sends the datagrams returned and shows the lines and failures.
Members that never said they acknowledge (older versions) get plain ``MSG`` lines, as before.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from weron.apps.roster import VERSION, Ack, ChatMessage, Line, Posted

FIRST_RETRY: Final = 0.5  # s: longer than a round trip, even through a relay
MAX_RETRY: Final = 4.0  # s: once a path healed, the next copy is at most this far away
MAX_PENDING: Final = 256  # lines held for members that have not acknowledged them
WINDOW: Final = 1024  # a receiver remembers this many line numbers per sender at most


@dataclass(frozen=True, slots=True)
class Send:
    """A datagram for the member with public key ``to``."""

    to: bytes
    message: ChatMessage


@dataclass(frozen=True, slots=True)
class Failure:
    """``text`` did not reach ``member`` in time (or the member left first)."""

    member: bytes
    text: str


@dataclass(slots=True)
class _Pending:
    text: str
    waiting: set[bytes]
    deadline: float


@dataclass(slots=True)
class _Retry:
    """When a member's lines are next sent again, and the wait after that."""

    at: float
    interval: float = FIRST_RETRY


@dataclass(slots=True)
class _Window:
    """The line numbers of one sender's ``epoch`` already shown: every one up to ``floor``,
    and those in ``above`` (never more than ``WINDOW`` past ``floor``)."""

    epoch: str
    floor: int = 0
    above: set[int] = field(default_factory=set)

    def first(self, seq: int) -> bool:
        """Record ``seq``; True the first time it is seen."""
        if seq <= self.floor or seq in self.above:
            return False
        self.above.add(seq)
        if seq > self.floor + WINDOW:  # the gap behind was given up by the sender long ago
            self.floor = seq - WINDOW
            self.above = {s for s in self.above if s > self.floor}
        while self.floor + 1 in self.above:
            self.floor += 1
            self.above.remove(self.floor)
        return True


class Delivery:
    """One member's lines out (numbered, held until acknowledged) and lines in (shown once)."""

    def __init__(self, timeout: float, epoch: str | None = None) -> None:
        self.epoch = epoch if epoch is not None else secrets.token_hex(8)
        self._timeout = timeout
        self._seq = 0
        self._pending: dict[int, _Pending] = {}  # in the order said
        self._retries: dict[bytes, _Retry] = {}  # members some pending line waits for
        self._windows: dict[bytes, _Window] = {}
        self._acking: set[bytes] = set()

    @property
    def waiting(self) -> int:
        """Lines some member has not acknowledged yet."""
        return len(self._pending)

    def version(self, member: bytes, number: int) -> None:
        """A member said which chat version it speaks."""
        if number >= VERSION:
            self._acking.add(member)

    def say(self, text: str, members: Iterable[bytes], now: float) -> list[Send] | None:
        """The datagrams that carry a new line to ``members`` (to a member whose older lines
        went unanswered: none, ``tick`` sends them all now); None, and nothing sent, while
        ``MAX_PENDING`` lines are still waiting for acks."""
        if len(self._pending) >= MAX_PENDING:
            return None
        self._seq += 1
        posted = Posted(self.epoch, self._seq, text)
        targets = list(members)
        waiting = {member for member in targets if member in self._acking}
        if waiting:
            self._pending[self._seq] = _Pending(text, waiting, now + self._timeout)
        # Members whose older lines went unanswered (a path healing): the new line goes out
        # with their copies, now and after them, so that it does not arrive ahead of them.
        behind = {
            m for m in waiting if m in self._retries and self._retries[m].interval > FIRST_RETRY
        }
        for member in waiting:
            retry = self._retries.setdefault(member, _Retry(now + FIRST_RETRY))
            if member in behind:
                retry.at = now
        return [Send(m, posted if m in waiting else Line(text)) for m in targets if m not in behind]

    def received(self, sender: bytes, posted: Posted) -> tuple[Send, bool]:
        """The ack for a line, and whether to show it (False: a copy of one shown)."""
        self._acking.add(sender)
        window = self._windows.get(sender)
        if window is None or window.epoch != posted.epoch:  # new, or restarted
            window = self._windows[sender] = _Window(posted.epoch)
        return Send(sender, Ack(posted.epoch, posted.seq)), window.first(posted.seq)

    def acked(self, sender: bytes, ack: Ack, now: float) -> None:
        """An ack: the path to ``sender`` works, its other lines go again soon."""
        self._acking.add(sender)
        pending = self._pending.get(ack.seq) if ack.epoch == self.epoch else None
        if pending is None or sender not in pending.waiting:
            return
        pending.waiting.discard(sender)
        if not pending.waiting:
            del self._pending[ack.seq]
        retry = self._retries[sender]
        if any(sender in p.waiting for p in self._pending.values()):
            retry.at = min(retry.at, now + FIRST_RETRY)  # never later: acks of newer lines
            retry.interval = FIRST_RETRY  # must not keep an older lost one waiting
        else:
            del self._retries[sender]

    def tick(self, now: float) -> tuple[list[Send], list[Failure]]:
        """Copies of the lines due again, and the lines given up on, in the order said."""
        sends: list[Send] = []
        failures: list[Failure] = []
        for seq, pending in list(self._pending.items()):
            if now >= pending.deadline:
                failures += [Failure(member, pending.text) for member in sorted(pending.waiting)]
                del self._pending[seq]
        for member, retry in list(self._retries.items()):
            lines = [(s, p.text) for s, p in self._pending.items() if member in p.waiting]
            if not lines:
                del self._retries[member]
            elif now >= retry.at:
                sends += [Send(member, Posted(self.epoch, s, text)) for s, text in lines]
                retry.interval = min(retry.interval * 2, MAX_RETRY)
                retry.at = now + retry.interval
        return sends, failures

    def next_deadline(self) -> float | None:
        """When ``tick`` has something to do next; None while no line waits."""
        deadlines = [p.deadline for p in self._pending.values()]
        return min(deadlines + [r.at for r in self._retries.values()], default=None)

    def forget(self, member: bytes) -> list[Failure]:
        """A member left: the lines it has not acknowledged failed; its own are forgotten."""
        self._acking.discard(member)
        self._windows.pop(member, None)
        self._retries.pop(member, None)
        failures: list[Failure] = []
        for seq, pending in list(self._pending.items()):
            if member in pending.waiting:
                failures.append(Failure(member, pending.text))
                pending.waiting.discard(member)
                if not pending.waiting:
                    del self._pending[seq]
        return failures
