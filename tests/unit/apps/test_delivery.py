"""gonet's line delivery: cores run against each other over a simulated network that loses,
duplicates and reorders datagrams, or carries nothing at all for a while (a path healing)."""

from __future__ import annotations

import itertools
import random

from weron.apps.delivery import MAX_PENDING, MAX_RETRY, WINDOW, Delivery, Failure, Send
from weron.apps.roster import VERSION, Ack, Line, Posted, decode_chat, encode_chat

TIMEOUT = 15.0
STEP = 0.1  # simulated seconds between two rounds of datagrams


class Network:
    """Members' delivery cores, what each showed and was told failed, and the datagrams in
    flight, all on a simulated clock."""

    def __init__(self, count: int, seed: int, *, versions: tuple[int, ...] = ()) -> None:
        self.keys = [bytes([n + 1]) * 32 for n in range(count)]
        self.cores = {
            key: Delivery(TIMEOUT, epoch=f"{n + 1:016x}") for n, key in enumerate(self.keys)
        }
        versions = versions or (VERSION,) * count
        for key, core in self.cores.items():
            for other, version in zip(self.keys, versions, strict=True):
                if other != key:
                    core.version(other, version)
        self.shown: dict[bytes, list[tuple[bytes, str]]] = {key: [] for key in self.keys}
        self.failed: dict[bytes, list[Failure]] = {key: [] for key in self.keys}
        self.in_flight: list[tuple[bytes, Send]] = []
        self.sent = 0
        self.now = 0.0
        self.rng = random.Random(seed)

    def others(self, key: bytes) -> list[bytes]:
        return [other for other in self.keys if other != key]

    def say(self, key: bytes, text: str) -> None:
        sends = self.cores[key].say(text, self.others(key), self.now)
        assert sends is not None
        self.post(key, sends)

    def post(self, sender: bytes, sends: list[Send]) -> None:
        self.in_flight += [(sender, send) for send in sends]
        self.sent += len(sends)

    def step(
        self,
        *,
        loss: float = 0.0,
        duplicates: float = 0.0,
        down: bool = False,
        reorder: bool = True,
    ) -> None:
        """One round: the datagrams in flight arrive (in any order, or in the order sent, as
        on one path), or not, or twice; then every core's timers run."""
        self.now += STEP
        arriving, self.in_flight = self.in_flight, []
        if reorder:
            self.rng.shuffle(arriving)
        for sender, send in arriving:
            if down or self.rng.random() < loss:
                continue
            for _ in range(2 if self.rng.random() < duplicates else 1):
                self.arrive(sender, send)
        for key, core in self.cores.items():
            sends, failures = core.tick(self.now)
            self.post(key, sends)
            self.failed[key] += failures

    def arrive(self, sender: bytes, send: Send) -> None:
        message = decode_chat(encode_chat(send.message))  # what the wire carries
        core = self.cores[send.to]
        if isinstance(message, Posted):
            ack, show = core.received(sender, message)
            self.post(send.to, [ack])
            if show:
                self.shown[send.to].append((sender, message.text))
        elif isinstance(message, Ack):
            core.acked(sender, message, self.now)
        else:
            assert isinstance(message, Line)
            self.shown[send.to].append((sender, message.text))

    def settle(self, *, reorder: bool = True) -> None:
        """Rounds until nothing is waiting for an ack nor in flight."""
        while self.in_flight or any(core.waiting for core in self.cores.values()):
            self.step(reorder=reorder)


def test_every_line_arrives_once_through_loss_duplicates_and_an_outage() -> None:
    net = Network(3, seed=1)
    alice, bob, carol = net.keys
    said: dict[bytes, list[str]] = {key: [] for key in net.keys}
    for n in range(60):
        speaker = net.keys[n % 3]
        said[speaker].append(f"line {n}")
        net.say(speaker, f"line {n}")
        net.step(loss=0.3, duplicates=0.3, down=20 <= n < 50)  # 3 s without a path
    net.settle()
    for key in net.keys:
        assert net.failed[key] == []
        for other in net.others(key):
            got = [text for sender, text in net.shown[key] if sender == other]
            assert sorted(got) == sorted(said[other])  # each exactly once
    assert net.cores[alice].waiting == net.cores[bob].waiting == net.cores[carol].waiting == 0


def test_lines_said_during_a_short_outage_arrive_in_order() -> None:
    """Copies of the lines held go out together, in the order said, once the path is back."""
    net = Network(2, seed=2)
    alice, bob = net.keys
    for n in range(20):
        net.say(alice, f"line {n}")
        net.step(down=True)
    net.settle(reorder=False)
    assert net.shown[bob] == [(alice, f"line {n}") for n in range(20)]


def test_a_line_said_once_the_path_is_back_arrives_after_those_said_before() -> None:
    """Lines wait unacknowledged (their copies go less and less often); the path is back and
    a new line is said before the next copy is due: it goes with their copies, after them,
    not ahead (a member restarted with its identity got it first, then the older ones)."""
    net = Network(2, seed=3)
    alice, bob = net.keys
    for n in range(3):
        net.say(alice, f"line {n}")
    for _ in range(int(2 / STEP)):
        net.step(down=True)
    net.say(alice, "after")
    net.settle(reorder=False)
    assert net.shown[bob] == [(alice, f"line {n}") for n in range(3)] + [(alice, "after")]


def test_a_lost_line_is_sent_again_while_newer_ones_keep_being_acknowledged() -> None:
    net = Network(2, seed=5)
    alice, bob = net.keys
    net.say(alice, "lost once")
    net.in_flight.clear()
    for n in range(int(2 * TIMEOUT / STEP)):
        net.say(alice, f"line {n}")
        net.step()
    net.settle()
    assert net.failed[alice] == []
    assert net.shown[bob].count((alice, "lost once")) == 1
    assert len(net.shown[bob]) == 1 + int(2 * TIMEOUT / STEP)


def test_a_line_not_acknowledged_in_time_is_reported_once_per_member() -> None:
    net = Network(3, seed=3)
    alice, bob, carol = net.keys
    net.say(alice, "anyone?")
    while not net.failed[alice]:
        # carol's path is gone for good: what goes to or comes from her is lost.
        net.in_flight = [(s, send) for s, send in net.in_flight if carol not in (s, send.to)]
        net.step()
    assert net.failed[alice] == [Failure(carol, "anyone?")]
    assert net.now >= TIMEOUT
    assert net.shown[bob] == [(alice, "anyone?")] and net.shown[carol] == []
    assert net.cores[alice].waiting == 0 and net.cores[alice].next_deadline() is None


def test_copies_come_less_and_less_often_and_stop_at_the_timeout() -> None:
    core = Delivery(TIMEOUT, epoch="0" * 16)
    bob = b"b" * 32
    core.version(bob, VERSION)
    core.say("hello", [bob], 0.0)
    times = []
    while (deadline := core.next_deadline()) is not None:
        sends, failures = core.tick(deadline)
        times += [deadline] * len(sends)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert gaps == sorted(gaps) and max(gaps) == MAX_RETRY
    assert failures == [Failure(bob, "hello")] and all(t < TIMEOUT for t in times)


def test_a_member_that_left_fails_its_lines_and_is_no_longer_waited_for() -> None:
    core = Delivery(TIMEOUT, epoch="0" * 16)
    bob, carol = b"b" * 32, b"c" * 32
    core.version(bob, VERSION)
    core.version(carol, VERSION)
    core.say("one", [bob, carol], 0.0)
    core.say("two", [bob], 0.0)
    core.acked(carol, Ack("0" * 16, 1), 0.0)
    assert core.forget(bob) == [Failure(bob, "one"), Failure(bob, "two")]
    assert core.waiting == 0
    assert core.say("three", [bob], 1.0) == [Send(bob, Line("three"))]  # not known to ack now


def test_older_members_get_and_send_plain_lines() -> None:
    net = Network(2, seed=4, versions=(VERSION, 1))
    new, old = net.keys
    net.say(new, "to an old member")
    assert [send.message for _, send in net.in_flight] == [Line("to an old member")]
    net.settle()
    assert net.shown[old] == [(new, "to an old member")]
    assert net.cores[new].waiting == 0


def test_acks_from_another_epoch_or_member_change_nothing() -> None:
    core = Delivery(TIMEOUT, epoch="0" * 16)
    bob, carol = b"b" * 32, b"c" * 32
    core.version(bob, VERSION)
    core.say("hi", [bob], 0.0)
    core.acked(bob, Ack("1" * 16, 1), 0.0)
    core.acked(carol, Ack("0" * 16, 1), 0.0)
    assert core.waiting == 1


def test_a_restarted_sender_is_heard_again_and_duplicates_stay_suppressed() -> None:
    core = Delivery(TIMEOUT)
    bob = b"b" * 32
    assert core.received(bob, Posted("1" * 16, 1, "a")) == (Send(bob, Ack("1" * 16, 1)), True)
    assert not core.received(bob, Posted("1" * 16, 1, "a"))[1]
    assert core.received(bob, Posted("2" * 16, 1, "after a restart"))[1]
    assert not core.received(bob, Posted("2" * 16, 1, "after a restart"))[1]


def test_the_receiver_window_is_bounded_and_suppresses_copies_within_it() -> None:
    core = Delivery(TIMEOUT)
    bob = b"b" * 32
    epoch = "1" * 16
    shown = [n for n in range(2, 3 * WINDOW, 2) if core.received(bob, Posted(epoch, n, "x"))[1]]
    assert len(shown) == len(range(2, 3 * WINDOW, 2))  # every other line lost: gaps remain
    window = core._windows[bob]
    assert len(window.above) <= WINDOW
    assert not core.received(bob, Posted(epoch, 3 * WINDOW - 2, "x"))[1]
    assert core.received(bob, Posted(epoch, 3 * WINDOW - 1, "x"))[1]  # a gap filled late


def test_lines_held_are_capped() -> None:
    core = Delivery(TIMEOUT)
    bob = b"b" * 32
    core.version(bob, VERSION)
    for n in range(MAX_PENDING):
        assert core.say(f"line {n}", [bob], 0.0) is not None
    assert core.say("one too many", [bob], 0.0) is None
    core.acked(bob, Ack(core.epoch, 1), 0.0)
    assert core.say("room again", [bob], 0.0) is not None
