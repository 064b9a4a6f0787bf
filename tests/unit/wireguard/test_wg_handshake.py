"""Two protocol cores against each other, no sockets: handshakes, transport, every rejection."""

from __future__ import annotations

import os
import random

import pytest

from weron.wireguard.crypto import PrivateKey, tai64n
from weron.wireguard.device import (
    Datagram,
    Receipt,
    Timers,
    WireGuardDevice,
    WireGuardPeer,
    padded_size,
)
from weron.wireguard.messages import (
    CONSTRUCTION,
    COOKIE_REPLY_SIZE,
    IDENTIFIER,
    INITIATION_SIZE,
    LABEL_COOKIE,
    LABEL_MAC1,
    RESPONSE_SIZE,
    TRANSPORT_MIN_SIZE,
)

A_ADDR = ("198.51.100.1", 51820)
B_ADDR = ("198.51.100.2", 51820)


class Clock:
    """A TAI64N source that moves one second per call (so timestamps always increase)."""

    def __init__(self, start_ns: int = 1_700_000_000 * 10**9) -> None:
        self.ns = start_ns

    def __call__(self) -> bytes:
        self.ns += 10**9
        return tai64n(self.ns)


def make_pair(
    psk_a: bytes | None = None, psk_b: bytes | None = None, timers: Timers | None = None
) -> tuple[WireGuardDevice, WireGuardDevice, WireGuardPeer, WireGuardPeer]:
    """Device a knows b at B_ADDR; b knows a without an endpoint (learns it from a)."""
    a = WireGuardDevice(PrivateKey.generate(), timers=timers, timestamp=Clock())
    b = WireGuardDevice(PrivateKey.generate(), timers=timers, timestamp=Clock())
    peer_b = a.add_peer(b.public_key, psk=psk_a, endpoint=B_ADDR)
    peer_a = b.add_peer(a.public_key, psk=psk_b)
    return a, b, peer_b, peer_a


def carry(
    datagrams: list[Datagram], a: WireGuardDevice, b: WireGuardDevice, now: float
) -> tuple[list[Receipt], list[Receipt]]:
    """Carry datagrams between a (at A_ADDR) and b (at B_ADDR) until nothing is left to send;
    returns what a and b received."""
    got_a: list[Receipt] = []
    got_b: list[Receipt] = []
    pending = list(datagrams)
    while pending:
        data, endpoint = pending.pop(0)
        receiver, got, source = (b, got_b, A_ADDR) if endpoint == B_ADDR else (a, got_a, B_ADDR)
        receipt = receiver.receive(data, source, now)
        got.append(receipt)
        pending += receipt.replies
    return got_a, got_b


def establish(
    a: WireGuardDevice, b: WireGuardDevice, peer_b: WireGuardPeer, now: float = 0.0
) -> None:
    carry(a.initiate(peer_b, now), a, b, now)


def packets(receipts: list[Receipt]) -> list[bytes]:
    return [r.packet for r in receipts if r.packet is not None]


def reasons(receipts: list[Receipt]) -> list[str]:
    return [r.rejected for r in receipts if r.rejected is not None]


def test_constants_and_sizes_follow_the_paper() -> None:
    assert CONSTRUCTION == b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"
    assert IDENTIFIER == b"WireGuard v1 zx2c4 Jason@zx2c4.com"
    assert (LABEL_MAC1, LABEL_COOKIE) == (b"mac1----", b"cookie--")
    assert (INITIATION_SIZE, RESPONSE_SIZE, COOKIE_REPLY_SIZE, TRANSPORT_MIN_SIZE) == (
        148,
        92,
        64,
        32,
    )
    a, b, peer_b, _ = make_pair()
    ((initiation, endpoint),) = a.initiate(peer_b, 0.0)
    assert endpoint == B_ADDR and len(initiation) == 148 and initiation[:4] == b"\x01\0\0\0"
    receipt = b.receive(initiation, A_ADDR, 0.0)
    ((response, _),) = receipt.replies
    assert len(response) == 92 and response[:4] == b"\x02\0\0\0"
    ((keepalive, _),) = a.receive(response, B_ADDR, 0.0).replies
    assert len(keepalive) == 32 and keepalive[:4] == b"\x04\0\0\0"


@pytest.mark.parametrize("with_psk", [False, True])
def test_many_random_key_pairs_handshake_and_exchange_data_both_ways(with_psk: bool) -> None:
    for _ in range(15):
        psk = os.urandom(32) if with_psk else None
        a, b, peer_b, peer_a = make_pair(psk, psk)
        establish(a, b, peer_b)
        assert peer_b.current is not None and peer_a.current is not None
        got_a, got_b = carry(a.send(peer_b, b"ping" * 10, 1.0), a, b, 1.0)
        assert packets(got_b) == [b"ping" * 10 + bytes(8)]  # padded to 16 bytes
        assert peer_a.endpoint == A_ADDR
        got_a, _ = carry(b.send(peer_a, b"pong", 1.0), a, b, 1.0)
        assert packets(got_a) == [b"pong" + bytes(12)]


def test_responder_stages_data_until_the_initiator_confirms() -> None:
    a, b, peer_b, peer_a = make_pair()
    ((initiation, _),) = a.initiate(peer_b, 0.0)
    ((response, _),) = b.receive(initiation, A_ADDR, 0.0).replies
    assert peer_a.current is None and peer_a.next is not None
    ((own_initiation, _),) = b.send(peer_a, b"early", 0.0)  # unconfirmed keys are not used:
    assert own_initiation[0] == 1 and list(peer_a.staged) == [b"early"]  # staged, handshake
    ((keepalive, _),) = a.receive(response, B_ADDR, 0.0).replies
    receipt = b.receive(keepalive, A_ADDR, 0.0)
    assert receipt.packet is None and peer_a.current is not None and not peer_a.staged
    ((staged, _),) = receipt.replies
    assert a.receive(staged, B_ADDR, 0.0).packet == b"early" + bytes(11)


def test_tampered_mac1_is_rejected_and_answered_with_nothing() -> None:
    a, b, peer_b, _ = make_pair()
    ((initiation, _),) = a.initiate(peer_b, 0.0)
    for position in (8, 116, 140):  # body byte, MAC1 byte, MAC2 byte
        tampered = bytearray(initiation)
        tampered[position] ^= 1
        receipt = b.receive(bytes(tampered), A_ADDR, 0.0)
        if position == 140:  # MAC2 is only checked under load
            assert receipt.rejected is None
            continue
        assert receipt.rejected == "initiation with an invalid MAC1" and not receipt.replies


def test_replayed_initiation_and_old_timestamp_are_rejected() -> None:
    a, b, peer_b, _ = make_pair()
    ((initiation, _),) = a.initiate(peer_b, 0.0)
    assert b.receive(initiation, A_ADDR, 0.0).rejected is None
    replay = b.receive(initiation, A_ADDR, 10.0)
    assert replay.rejected is not None and "replayed" in replay.rejected and not replay.replies
    # A fresh initiation whose timestamp is older than the last one seen.
    assert isinstance(a._timestamp, Clock)
    a._timestamp.ns -= 100 * 10**9
    ((old, _),) = a.initiate(peer_b, 20.0)
    receipt = b.receive(old, A_ADDR, 20.0)
    assert receipt.rejected is not None and "timestamp not newer" in receipt.rejected


def test_initiation_flood_is_rejected() -> None:
    a, b, peer_b, _ = make_pair()
    first = a.initiate(peer_b, 0.0)
    second = a.initiate(peer_b, 10.0)
    assert b.receive(first[0][0], A_ADDR, 0.0).rejected is None
    receipt = b.receive(second[0][0], A_ADDR, 0.001)
    assert receipt.rejected is not None and "flood" in receipt.rejected


def test_wrong_psk_never_completes_a_session() -> None:
    a, b, peer_b, peer_a = make_pair(os.urandom(32), os.urandom(32))
    got_a, _ = carry(a.initiate(peer_b, 0.0), a, b, 0.0)
    assert reasons(got_a) == ["response does not decrypt (wrong peer or pre-shared key)"]
    assert peer_b.current is None and peer_a.current is None
    a2, b2, peer_b2, _ = make_pair(None, os.urandom(32))  # one side has none at all
    got_a, _ = carry(a2.initiate(peer_b2, 0.0), a2, b2, 0.0)
    assert "wrong peer or pre-shared key" in reasons(got_a)[0]


def test_unknown_static_key_is_rejected() -> None:
    _, b, _, _ = make_pair()
    stranger = WireGuardDevice(PrivateKey.generate(), timestamp=Clock())
    peer = stranger.add_peer(b.public_key, endpoint=B_ADDR)
    ((initiation, _),) = stranger.initiate(peer, 0.0)
    assert b.receive(initiation, A_ADDR, 0.0).rejected == "initiation from an unknown public key"


def test_counters_outside_the_window_and_replays_are_rejected() -> None:
    a, b, peer_b, _ = make_pair()
    establish(a, b, peer_b)
    sent = [a.send(peer_b, b"x%d" % i, 1.0)[0][0] for i in range(8200)]
    assert b.receive(sent[5000], A_ADDR, 1.0).packet is not None
    assert b.receive(sent[4000], A_ADDR, 1.0).packet is not None  # late, inside the window
    assert b.receive(sent[4000], A_ADDR, 1.0).rejected == "counter replayed or outside the window"
    assert b.receive(sent[8199], A_ADDR, 1.0).packet is not None
    too_old = b.receive(sent[0], A_ADDR, 1.0)  # 8199 - 0 > 8128 behind the newest
    assert too_old.rejected == "counter replayed or outside the window"
    tampered = bytearray(sent[8198])
    tampered[-1] ^= 1
    assert b.receive(bytes(tampered), A_ADDR, 1.0).rejected == (
        "transport message does not authenticate"
    )
    assert b.receive(sent[8198], A_ADDR, 1.0).packet is not None  # forgery did not mark it


def test_garbage_of_every_length_is_rejected_with_a_reason() -> None:
    a, b, peer_b, _ = make_pair()
    establish(a, b, peer_b)
    rng = random.Random(7)
    for length in range(0, 300):
        for first in (None, 1, 2, 3, 4):
            data = bytearray(rng.randbytes(length))
            if first is not None and length >= 4:
                data[0:4] = bytes([first, 0, 0, 0])
            receipt = b.receive(bytes(data), A_ADDR, 1.0)
            assert receipt.rejected, (length, first)
            assert receipt.packet is None and not receipt.replies
    # Valid type and size with random bodies, and real messages cut short.
    ((initiation, _),) = a.initiate(peer_b, 10.0)
    for cut in range(len(initiation)):
        assert b.receive(initiation[:cut], A_ADDR, 10.0).rejected


def test_low_order_public_keys_are_harmless() -> None:
    device = WireGuardDevice(PrivateKey.generate(), timestamp=Clock())
    peer = device.add_peer(bytes(32), endpoint=B_ADDR)
    assert peer.static_static is None
    assert device.initiate(peer, 0.0) == []
    assert device.send(peer, b"data", 0.0) == []


def test_cookie_reply_under_load_then_mac2_gets_through() -> None:
    timers = Timers()
    a, b, peer_b, peer_a = make_pair(timers=timers)
    b.under_load = True
    ((initiation, _),) = a.initiate(peer_b, 0.0)
    receipt = b.receive(initiation, A_ADDR, 0.0)
    assert receipt.rejected == "under load: cookie sent" and peer_a.next is None
    ((cookie_reply, _),) = receipt.replies
    assert len(cookie_reply) == 64 and cookie_reply[0] == 3
    tampered = bytearray(cookie_reply)
    tampered[40] ^= 1
    assert a.receive(bytes(tampered), B_ADDR, 0.1).rejected == "cookie reply does not decrypt"
    assert a.receive(cookie_reply, B_ADDR, 0.1).rejected is None
    retry = a.tick(timers.rekey_timeout + 0.5)  # retransmission carries MAC2 now
    assert len(retry) == 1
    carry(retry, a, b, 5.5)
    assert peer_b.current is not None and peer_a.current is not None
    # The cookie is bound to the address: the same initiation from elsewhere needs a new one.
    ((again, _),) = a.initiate(peer_b, 20.0)
    assert b.receive(again, ("198.51.100.9", 1), 20.0).rejected == "under load: cookie sent"


def test_rekey_after_time_keeps_data_flowing() -> None:
    timers = Timers(rekey_after_time=10.0, reject_after_time=30.0)
    a, b, peer_b, peer_a = make_pair(timers=timers)
    establish(a, b, peer_b)
    first = peer_b.current
    out = a.send(peer_b, b"old", 11.0)
    assert len(out) == 2 and out[1][0][0] == 1  # data with the old keys, then an initiation
    assert packets(carry(out, a, b, 11.0)[1]) == [b"old" + bytes(13)]
    assert peer_b.current is not first and peer_b.previous is first
    assert packets(carry(a.send(peer_b, b"new", 12.0), a, b, 12.0)[1]) == [b"new" + bytes(13)]
    assert packets(carry(b.send(peer_a, b"back", 12.0), a, b, 12.0)[0]) == [b"back" + bytes(12)]


def test_expired_session_stages_and_rehandshakes() -> None:
    timers = Timers(rekey_after_time=10.0, reject_after_time=30.0)
    a, b, peer_b, peer_a = make_pair(timers=timers)
    establish(a, b, peer_b)
    old = a.send(peer_b, b"late", 1.0)
    assert b.receive(old[0][0], A_ADDR, 31.0).rejected == "transport message for an expired session"
    out = b.send(peer_a, b"hello", 31.0)  # the responder's keys expired: it initiates now
    assert [d[0] for d, _ in out] == [1]
    got_a, _ = carry(out, a, b, 31.0)
    assert packets(got_a) == [b"hello" + bytes(11)]
    assert peer_a.current is not None and peer_a.current.initiator


def test_rekey_after_messages() -> None:
    timers = Timers(rekey_after_messages=5)
    a, b, peer_b, _ = make_pair(timers=timers)
    establish(a, b, peer_b)
    kinds = [d[0] for n in range(6) for d, _ in a.send(peer_b, b"%d" % n, 10.0 + n)]
    # The keepalive of the handshake was message 0: the 5th message is followed by an
    # initiation, and no second one follows within REKEY_TIMEOUT.
    assert kinds == [4, 4, 4, 4, 1, 4, 4]


def test_passive_keepalive_after_receiving_data() -> None:
    a, b, peer_b, _ = make_pair()
    establish(a, b, peer_b)
    carry(a.send(peer_b, b"data", 1.0), a, b, 1.0)
    assert b.tick(5.0) == []
    ((keepalive, endpoint),) = b.tick(11.0)
    assert endpoint == A_ADDR and len(keepalive) == 32
    receipt = a.receive(keepalive, B_ADDR, 11.0)
    assert receipt.rejected is None and receipt.packet is None
    assert b.tick(30.0) == []  # nothing new received: no more keepalives


def test_new_handshake_when_the_peer_goes_silent() -> None:
    a, b, peer_b, _ = make_pair()
    establish(a, b, peer_b)
    a.send(peer_b, b"unanswered", 1.0)
    assert a.tick(10.0) == []
    ((initiation, _),) = a.tick(16.0)
    assert initiation[0] == 1


def test_retransmission_then_giving_up_drops_staged_packets() -> None:
    timers = Timers()
    a, _, peer_b, _ = make_pair(timers=timers)
    first = a.send(peer_b, b"queued", 0.0)
    assert [d[0] for d, _ in first] == [1] and list(peer_b.staged) == [b"queued"]
    sent = 1
    now = 0.0
    while now < 100.0:
        now += 0.5
        sent += len(a.tick(now))
    assert 17 <= sent <= 19  # every 5 s (plus jitter) for 90 s
    assert not peer_b.staged and peer_b.handshake is None


def test_endpoint_roams_to_where_authenticated_packets_come_from() -> None:
    a, b, peer_b, peer_a = make_pair()
    establish(a, b, peer_b)
    ((data, _),) = a.send(peer_b, b"moved", 1.0)
    elsewhere = ("203.0.113.7", 40000)
    assert b.receive(data, elsewhere, 1.0).packet is not None
    assert peer_a.endpoint == elsewhere
    ((forged, _),) = a.send(peer_b, b"x", 1.0)
    bad = bytearray(forged)
    bad[20] ^= 1
    b.receive(bytes(bad), ("203.0.113.8", 1), 1.0)
    assert peer_a.endpoint == elsewhere


def test_keys_are_erased_after_three_reject_times() -> None:
    a, b, peer_b, _ = make_pair()
    establish(a, b, peer_b)
    a.tick(539.0)
    assert peer_b.current is not None
    a.tick(541.0)
    assert peer_b.current is None and peer_b.previous is None


def test_padding_to_sixteen_bytes_within_the_mtu() -> None:
    assert [padded_size(n, 1420) for n in (0, 1, 16, 17, 1400, 1415, 1420)] == [
        0,
        16,
        16,
        32,
        1408,
        1420,
        1420,
    ]


def test_simultaneous_initiations_leave_both_sides_with_working_sessions() -> None:
    a, b, peer_b, peer_a = make_pair()
    peer_a.endpoint = A_ADDR
    from_a = a.initiate(peer_b, 0.0)
    from_b = b.initiate(peer_a, 0.0)
    carry(from_a + from_b, a, b, 0.0)
    assert packets(carry(a.send(peer_b, b"1", 1.0), a, b, 1.0)[1]) == [b"1" + bytes(15)]
    assert packets(carry(b.send(peer_a, b"2", 1.0), a, b, 1.0)[0]) == [b"2" + bytes(15)]


def test_probes_complete_the_handshake_on_the_path_that_answers_and_make_the_peer_roam() -> None:
    a, b, peer_b, peer_a = make_pair()
    probe = a.probe(peer_b, 0.0)
    assert probe is not None and len(probe) == INITIATION_SIZE
    assert a.probe(peer_b, 0.1) == probe  # the same initiation goes along every path
    punched = ("203.0.113.9", 40000)  # the path that answered: b roams there
    first = b.receive(probe, punched, 0.2)
    assert first.peer is peer_a and peer_a.endpoint == punched
    assert b.receive(probe, B_ADDR, 0.3).rejected  # a copy along another path is a replay
    response, _ = first.replies[0]
    assert a.receive(response, B_ADDR, 0.4).peer is peer_b and peer_b.has_session
    keepalive = a.probe(peer_b, 0.5)  # with a session: an empty transport message
    assert keepalive is not None and len(keepalive) == TRANSPORT_MIN_SIZE
    moved = ("203.0.113.9", 40001)
    receipt = b.receive(keepalive, moved, 0.6)
    assert receipt.rejected is None and peer_a.endpoint == moved
    assert b.receive(keepalive, B_ADDR, 0.7).rejected  # duplicates do not move it back
    assert peer_a.endpoint == moved


# -- deadlines: when the core next needs a tick ------------------------------------------------


def run_by_deadlines(device: WireGuardDevice, until: float) -> list[tuple[float, bytes]]:
    """Tick ``device`` only at the deadlines it names, as its endpoint does; returns what it
    sent and when. Each tick must move the deadline past ``now`` (or clear it): an endpoint
    never spins on a deadline that stays due."""
    sent: list[tuple[float, bytes]] = []
    deadline = device.next_deadline()
    while deadline is not None and deadline <= until:
        sent += [(deadline, data) for data, _ in device.tick(deadline)]
        following = device.next_deadline()
        assert following is None or following > deadline
        deadline = following
    return sent


def test_an_idle_device_names_no_deadline() -> None:
    a, b, _, _ = make_pair()
    assert a.next_deadline() is None and b.next_deadline() is None
    assert a.tick(1000.0) == [] and a.next_deadline() is None


def test_an_unanswered_initiation_is_due_again_exactly_at_its_deadline() -> None:
    timers = Timers()
    a, _, peer_b, _ = make_pair(timers=timers)
    a.initiate(peer_b, 0.0)
    deadline = a.next_deadline()
    assert deadline is not None
    assert timers.rekey_timeout <= deadline <= timers.rekey_timeout + 0.334  # plus jitter
    assert a.tick(deadline - 0.001) == []
    ((again, _),) = a.tick(deadline)
    assert again[0] == 1
    following = a.next_deadline()
    assert following is not None and following >= deadline + timers.rekey_timeout


def test_retransmissions_by_deadline_give_up_and_leave_the_device_quiet() -> None:
    a, _, peer_b, _ = make_pair()
    a.send(peer_b, b"queued", 0.0)
    initiations = run_by_deadlines(a, until=1000.0)
    assert 17 <= 1 + len(initiations) <= 19  # every 5 s (plus jitter) for 90 s, as polled
    assert all(data[0] == 1 for _, data in initiations)
    assert not peer_b.staged and peer_b.handshake is None
    assert a.next_deadline() is None


def test_received_data_makes_the_passive_keepalive_the_next_deadline() -> None:
    a, b, peer_b, _ = make_pair()
    establish(a, b, peer_b)
    assert b.next_deadline() == 3 * b.timers.reject_after_time  # key erasure
    carry(a.send(peer_b, b"data", 1.0), a, b, 1.0)
    assert b.next_deadline() == 1.0 + b.timers.keepalive_timeout
    ((keepalive, _),) = b.tick(1.0 + b.timers.keepalive_timeout)
    assert len(keepalive) == 32
    assert b.next_deadline() == 3 * b.timers.reject_after_time


def test_a_stopped_timer_makes_one_early_wake_up_then_the_real_deadline() -> None:
    a, b, peer_b, _ = make_pair()
    establish(a, b, peer_b)  # the answered initiation's retransmission stays as a deadline
    a.send(peer_b, b"unanswered", 1.0)
    early = a.next_deadline()
    assert early is not None and early < 16.0
    assert a.tick(early) == []
    assert a.next_deadline() == 1.0 + a.timers.keepalive_timeout + a.timers.rekey_timeout
    ((initiation, _),) = a.tick(16.0)
    assert initiation[0] == 1


def test_persistent_keepalives_by_deadline_stop_when_the_session_expires() -> None:
    timers = Timers(rekey_after_time=10.0, reject_after_time=30.0)
    a, b, peer_b, _ = make_pair(timers=timers)
    establish(a, b, peer_b)
    a.set_persistent_keepalive(peer_b, 2.0)
    assert a.next_deadline() is not None
    sent = run_by_deadlines(a, until=1000.0)
    assert [when for when, _ in sent] == [2.0 * n for n in range(1, 15)]  # none at 30 s
    assert all(len(data) == 32 for _, data in sent)
    assert peer_b.current is None  # erased after 3 × 30 s, and nothing is due any more
    assert a.next_deadline() is None


def test_a_batch_past_rekey_after_messages_starts_a_handshake_as_single_sends_do() -> None:
    timers = Timers(rekey_after_messages=5)
    a, b, peer_b, _ = make_pair(timers=timers)
    establish(a, b, peer_b)
    out = a.send_many(peer_b, [b"%d" % n for n in range(6)], 10.0)
    assert [d[0] for d, _ in out] == [4, 4, 4, 4, 4, 4, 1]


def test_datagrams_that_do_not_authenticate_arm_no_timer() -> None:
    """A stranger (or a member sending junk) cannot make the endpoint wake up."""
    a, b, peer_b, _ = make_pair()
    ((initiation, _),) = a.initiate(peer_b, 0.0)
    stranger = WireGuardDevice(PrivateKey.generate(), timestamp=Clock())
    ((foreign, _),) = stranger.initiate(stranger.add_peer(b.public_key, endpoint=B_ADDR), 0.0)
    tampered = bytearray(initiation)
    tampered[8] ^= 1
    junk = [bytes(tampered), foreign, b"\x04\0\0\0" + os.urandom(60), os.urandom(148)]
    for data in junk:
        assert b.receive(data, A_ADDR, 1.0).rejected is not None
    assert b.next_deadline() is None
