"""The negotiation core, sessions driven against each other through a simulated signaler
and a simulated WebRTC engine: no sockets, no timers, ``now`` moved by hand."""

from __future__ import annotations

import itertools
import logging
import random
from dataclasses import dataclass, field

import pytest

from weron.peers.session import (
    MAX_ID_LENGTH,
    MAX_NEGOTIATING,
    Action,
    AddCandidate,
    Answer,
    Close,
    Complete,
    MeshSession,
    Notice,
    Open,
    Phase,
    Send,
)
from weron.signaler_client.messages import (
    Exchange,
    Introduction,
    MessageType,
    SignalingMessage,
    encode_session_description,
)

TIMEOUT = 10.0


@dataclass
class Node:
    """One process: its session and what its simulated engine knows of each link."""

    session: MeshSession
    # link -> (remote node id, remote link) once the descriptions name each other
    pairs: dict[int, tuple[str, int]] = field(default_factory=dict)
    open_links: set[int] = field(default_factory=set)
    added: dict[int, list[str]] = field(default_factory=dict)
    notices: list[Notice] = field(default_factory=list)
    online: bool = True


class Mesh:
    """Routes each node's sends to the others (the relay) and plays the engine: an offer or
    answer SDP names its link, and two links that described each other connect."""

    def __init__(self, *ids: str, seed: int = 1) -> None:
        self.now = 0.0
        self.nodes = {
            node_id: Node(MeshSession(node_id, TIMEOUT, random.Random(seed))) for node_id in ids
        }
        self.candidates_first = False  # deliver candidates before the description they follow
        self.engine_works = True  # False: ICE never connects (no usable pair)
        self.relay: list[tuple[str, SignalingMessage]] = []
        self.intercepted: list[SignalingMessage] = []

    def start(self, *ids: str) -> None:
        for node_id in ids or tuple(self.nodes):
            self.apply(node_id, self.nodes[node_id].session.signaler_connected(self.now))

    def apply(self, node_id: str, actions: list[Action]) -> None:
        node = self.nodes[node_id]
        for action in actions:
            match action:
                case Send(message):
                    if node.online:
                        self.relay.append((node_id, message))
                case Open(link, _, initiator):
                    node.open_links.add(link)
                    if initiator:
                        self.apply(
                            node_id, node.session.local_candidate(link, _host(node_id, link))
                        )
                        self.apply(
                            node_id, node.session.local_description(link, f"offer {node_id} {link}")
                        )
                case Answer(link, sdp):
                    _, remote_id, remote_link = sdp.split()
                    node.pairs[link] = (remote_id, int(remote_link))
                    self.apply(node_id, node.session.local_candidate(link, _host(node_id, link)))
                    self.apply(
                        node_id, node.session.local_description(link, f"answer {node_id} {link}")
                    )
                case Complete(link, sdp):
                    _, remote_id, remote_link = sdp.split()
                    node.pairs[link] = (remote_id, int(remote_link))
                    self._maybe_connect(node_id, link)
                case AddCandidate(link, candidate):
                    node.added.setdefault(link, []).append(candidate)
                case Close(link):
                    node.open_links.discard(link)
                case Notice():
                    node.notices.append(action)

    def _maybe_connect(self, node_id: str, link: int) -> None:
        remote_id, remote_link = self.nodes[node_id].pairs[link]
        remote = self.nodes[remote_id]
        if not self.engine_works or remote.pairs.get(remote_link) != (node_id, link):
            return
        if remote_link in remote.open_links and link in self.nodes[node_id].open_links:
            self.apply(node_id, self.nodes[node_id].session.connected(link, self.now))
            self.apply(remote_id, remote.session.connected(remote_link, self.now))

    def carry(self) -> None:
        """Relay until nothing is left, as the signaler would (to every other member)."""
        while self.relay:
            if self.candidates_first:
                self.relay.sort(key=lambda item: not _is_candidate(item[1]))
            sender, message = self.relay.pop(0)
            self.intercepted.append(message)
            for node_id, node in self.nodes.items():
                if node_id != sender and node.online:
                    self.apply(node_id, node.session.receive(message, self.now))

    def inject(self, node_id: str, message: SignalingMessage) -> None:
        """A message from a hostile member, straight to ``node_id``."""
        self.apply(node_id, self.nodes[node_id].session.receive(message, self.now))
        self.carry()

    def advance(self, seconds: float) -> None:
        """Move time on, ticking every node at each deadline on the way."""
        end = self.now + seconds
        while True:
            deadlines = [
                deadline
                for node in self.nodes.values()
                if (deadline := node.session.next_deadline()) is not None and deadline <= end
            ]
            if not deadlines:
                break
            self.now = max(self.now, min(deadlines))
            for node_id, node in self.nodes.items():
                self.apply(node_id, node.session.tick(self.now))
            self.carry()
        self.now = end

    def connected(self, node_id: str) -> set[str]:
        return set(self.nodes[node_id].session.connected_peers())

    def full_mesh(self) -> bool:
        return all(self.connected(node_id) == set(self.nodes) - {node_id} for node_id in self.nodes)


def _host(node_id: str, link: int) -> str:
    return f"candidate:{link} 1 udp 2130706431 192.0.2.{len(node_id)} {50000 + link} typ host"


def _is_candidate(message: SignalingMessage) -> bool:
    return isinstance(message, Exchange) and message.type is MessageType.CANDIDATE


def _offer(sender: str, recipient: str, sdp: str = "v=0") -> Exchange:
    payload = encode_session_description(MessageType.OFFER, sdp)
    return Exchange(MessageType.OFFER, sender, recipient, payload)


def _warnings(node: Node) -> list[Notice]:
    return [notice for notice in node.notices if notice.level >= logging.WARNING]


def test_a_newcomer_is_offered_to_and_both_connect() -> None:
    mesh = Mesh("a", "b")
    mesh.start("a")
    mesh.start("b")  # b introduces itself: a offers
    mesh.carry()
    assert mesh.full_mesh()
    assert mesh.nodes["a"].session.phase("b") is Phase.CONNECTED


def test_three_members_started_together_form_a_full_mesh() -> None:
    mesh = Mesh("a", "b", "c")
    mesh.start()
    mesh.carry()
    assert mesh.full_mesh()
    for node in mesh.nodes.values():  # one link per member, no leftovers
        assert len(node.open_links) == 2


def test_simultaneous_offers_leave_one_connection() -> None:
    mesh = Mesh("a", "b")
    mesh.start()
    # Both learn of each other at once and both offer before either offer arrives.
    mesh.apply("a", mesh.nodes["a"].session.receive(Introduction("b"), mesh.now))
    mesh.apply("b", mesh.nodes["b"].session.receive(Introduction("a"), mesh.now))
    mesh.carry()
    assert mesh.full_mesh()
    assert len(mesh.nodes["a"].open_links) == len(mesh.nodes["b"].open_links) == 1
    notices = [notice.event for notice in mesh.nodes["b"].notices]  # "b" > "a": b's offer wins
    assert "Ignoring offer: glare, ours wins" in notices


def test_candidates_before_descriptions_are_applied_after_them() -> None:
    mesh = Mesh("a", "b")
    mesh.candidates_first = True
    mesh.start("a")
    mesh.carry()
    mesh.start("b")
    mesh.carry()
    assert mesh.full_mesh()
    for node in mesh.nodes.values():
        (candidates,) = node.added.values()
        assert len(candidates) == 1


def test_candidates_wait_for_our_description() -> None:
    session = MeshSession("a", TIMEOUT)
    session.signaler_connected(0.0)
    actions = session.receive(Introduction("b"), 0.0)
    (link,) = [action.link for action in actions if isinstance(action, Open)]
    assert session.local_candidate(link, _host("a", link)) == []
    sent = session.local_description(link, "offer a 1")
    kinds = [
        action.message.type
        for action in sent
        if isinstance(action, Send) and isinstance(action.message, Exchange)
    ]
    assert kinds == [MessageType.OFFER, MessageType.CANDIDATE]


def test_a_signaler_restart_keeps_every_connection() -> None:
    mesh = Mesh("a", "b", "c")
    mesh.start()
    mesh.carry()
    links = {node_id: set(node.open_links) for node_id, node in mesh.nodes.items()}
    for node_id, node in mesh.nodes.items():
        mesh.apply(node_id, node.session.signaler_disconnected())
    mesh.advance(3)
    mesh.start()  # everyone reconnects and introduces itself again, same ids
    mesh.carry()
    assert mesh.full_mesh()
    assert {node_id: node.open_links for node_id, node in mesh.nodes.items()} == links


def test_forged_introductions_do_not_tear_down_live_connections() -> None:
    mesh = Mesh("a", "b")
    mesh.start()
    mesh.carry()
    before = set(mesh.nodes["a"].open_links)
    for _ in range(50):
        mesh.inject("a", Introduction("b"))
    assert mesh.nodes["a"].open_links == before
    assert mesh.full_mesh()


def test_an_offer_to_a_live_connection_replaces_it_only_once_the_new_one_connects() -> None:
    mesh = Mesh("a", "b")
    mesh.start()
    mesh.carry()
    (old,) = mesh.nodes["a"].open_links
    mesh.engine_works = False
    mesh.inject("a", _offer("b", "a", "offer b 99"))  # forged: no such link on b
    assert old in mesh.nodes["a"].open_links
    assert mesh.nodes["a"].session.phase("b") is Phase.STABLE  # the replacement, negotiating
    mesh.advance(TIMEOUT + 1)  # it never connects: dropped, the live one stays
    assert mesh.nodes["a"].open_links == {old}
    assert mesh.full_mesh()


def test_a_broken_connection_is_offered_again_at_once() -> None:
    mesh = Mesh("a", "b")
    mesh.start()
    mesh.carry()
    (old_a,) = mesh.nodes["a"].open_links
    (old_b,) = mesh.nodes["b"].open_links
    mesh.apply("a", mesh.nodes["a"].session.disconnected(old_a, mesh.now))
    mesh.apply("b", mesh.nodes["b"].session.disconnected(old_b, mesh.now))
    mesh.carry()  # both re-offer at once: glare picks one
    assert mesh.full_mesh()
    assert old_a not in mesh.nodes["a"].open_links
    assert old_b not in mesh.nodes["b"].open_links
    assert len(mesh.nodes["a"].open_links) == 1


def test_a_connection_broken_while_the_signaler_is_away_is_offered_when_it_returns() -> None:
    mesh = Mesh("a", "b")
    mesh.start()
    mesh.carry()
    for node_id, node in mesh.nodes.items():
        mesh.apply(node_id, node.session.signaler_disconnected())
        node.online = False
    for node_id, node in mesh.nodes.items():
        (link,) = node.open_links
        mesh.apply(node_id, node.session.failed(link, mesh.now, "failed"))
    assert not mesh.connected("a")
    for node in mesh.nodes.values():
        node.online = True
    mesh.start()
    mesh.carry()
    assert mesh.full_mesh()


def test_retries_wait_for_the_signaler_instead_of_falling_due_again_and_again() -> None:
    """With the signaler away, an offer cannot go out: a retry that fell due is not a deadline
    (the adapter would tick in a tight loop), it is made when the signaler returns."""
    mesh = Mesh("a", "b")
    mesh.start()
    mesh.carry()
    node = mesh.nodes["a"]
    mesh.apply("a", node.session.signaler_disconnected())
    node.online = False
    (link,) = node.open_links
    mesh.apply("a", node.session.failed(link, mesh.now, "failed"))
    for later in (mesh.now, mesh.now + 1, mesh.now + 5 * TIMEOUT):
        mesh.apply("a", node.session.tick(later))
        deadline = node.session.next_deadline()
        assert deadline is None or deadline > later
    node.online = True
    offers = [
        action
        for action in node.session.signaler_connected(mesh.now + 5 * TIMEOUT)
        if isinstance(action, Open)
    ]
    assert [action.peer_id for action in offers] == ["b"]


def test_a_member_restarted_under_the_same_id_is_reached_again() -> None:
    mesh = Mesh("a", "b")
    mesh.start()
    mesh.carry()
    mesh.nodes["b"] = Node(MeshSession("b", TIMEOUT))  # a new process, --id b
    mesh.start("b")
    mesh.carry()
    # a's connection still looks alive, so the introduction keeps it; then ICE notices.
    (old,) = mesh.nodes["a"].open_links
    mesh.apply("a", mesh.nodes["a"].session.disconnected(old, mesh.now))
    mesh.carry()
    assert mesh.full_mesh()


def test_ice_failure_warns_once_and_is_retried_with_backoff() -> None:
    mesh = Mesh("a", "b")
    mesh.engine_works = False
    mesh.start()
    mesh.carry()
    mesh.advance(TIMEOUT)
    for node in mesh.nodes.values():
        (warning,) = _warnings(node)
        assert "--ice stun:" in warning.fields["hint"]
        assert warning.fields["local_candidates"] == ["host"]
        assert warning.fields["remote_candidates"] == ["host"]
    mesh.engine_works = True
    mesh.advance(TIMEOUT * 2)  # a retry comes within the backoff
    assert mesh.full_mesh()
    assert all(len(_warnings(node)) == 1 for node in mesh.nodes.values())


def test_ice_failures_back_off_and_give_up() -> None:
    mesh = Mesh("a", "b")
    mesh.engine_works = False
    mesh.start()
    mesh.carry()
    opens: list[float] = []
    original = mesh.apply

    def record(node_id: str, actions: list[Action]) -> None:
        if node_id == "a":
            opens.extend(
                mesh.now for action in actions if isinstance(action, Open) and action.initiator
            )
        original(node_id, actions)

    mesh.apply = record  # type: ignore[method-assign]
    mesh.advance(TIMEOUT * 200)
    gaps = [later - earlier for earlier, later in itertools.pairwise(opens)]
    assert 3 <= len(opens) < 20
    assert gaps[-1] > gaps[0]
    assert mesh.nodes["a"].session.open_links() == 0
    assert mesh.nodes["a"].session.next_deadline() is None  # gave up: nothing left to do


def test_an_unanswered_offer_times_out_without_retries() -> None:
    session = MeshSession("a", TIMEOUT)
    session.signaler_connected(0.0)
    session.receive(Introduction("ghost"), 0.0)
    assert session.open_links() == 1
    actions = session.tick(TIMEOUT)
    assert any(isinstance(action, Close) for action in actions)
    assert not any(
        notice.level >= logging.WARNING for notice in actions if isinstance(notice, Notice)
    )
    assert session.open_links() == 0
    assert session.next_deadline() is None


def test_an_introduction_flood_is_bounded_and_cleared_by_the_timeout() -> None:
    session = MeshSession("a", TIMEOUT)
    session.signaler_connected(0.0)
    opened = 0
    for number in range(300):
        actions = session.receive(Introduction(f"forged-{number}"), number / 15000)
        opened += sum(isinstance(action, Open) for action in actions)
    assert opened == MAX_NEGOTIATING
    assert session.open_links() == MAX_NEGOTIATING
    now = 0.0
    while (deadline := session.next_deadline()) is not None:
        now = deadline
        session.tick(now)
    assert session.open_links() == 0
    assert now < TIMEOUT * 10  # the deferred ones were tried and dropped, not retried forever


def test_an_honest_newcomer_is_served_before_an_older_flood() -> None:
    session = MeshSession("a", TIMEOUT)
    session.signaler_connected(0.0)
    for number in range(MAX_NEGOTIATING + 100):
        session.receive(Introduction(f"forged-{number}"), 0.0)
    session.receive(Introduction("honest"), 0.5)
    actions = session.tick(TIMEOUT)
    opened = [action.peer_id for action in actions if isinstance(action, Open)]
    assert opened[0] == "honest"


def test_one_id_introduced_many_times_at_once_gets_one_connection() -> None:
    session = MeshSession("a", TIMEOUT)
    session.signaler_connected(0.0)
    opened = sum(
        isinstance(action, Open)
        for number in range(300)
        for action in session.receive(Introduction("b"), number / 15000)
    )
    assert opened == 1


@pytest.mark.parametrize(
    "message",
    [
        Introduction("x" * (MAX_ID_LENGTH + 1)),
        Exchange(MessageType.OFFER, "b", "a", b"not json"),
        Exchange(MessageType.OFFER, "b", "a", encode_session_description(MessageType.ANSWER, "")),
        Exchange(MessageType.ANSWER, "b", "a", encode_session_description(MessageType.ANSWER, "")),
        Exchange(MessageType.CANDIDATE, "b", "a", b"\xff\xfe"),
        Exchange(MessageType.CANDIDATE, "b", "a", b"c" * 5000),
        Exchange(MessageType.OFFER, "b", "a", b"{" * 100_000),
        _offer("x" * 100_000, "a"),
    ],
    ids=[
        "huge id",
        "offer not json",
        "offer of type answer",
        "unexpected answer",
        "candidate not utf-8",
        "huge candidate",
        "huge offer",
        "offer from a huge id",
    ],
)
def test_garbage_is_a_notice_and_changes_nothing(message: SignalingMessage) -> None:
    session = MeshSession("a", TIMEOUT)
    session.signaler_connected(0.0)
    actions = session.receive(message, 0.0)
    assert all(isinstance(action, Notice) for action in actions)
    assert session.open_links() == 0


def test_messages_for_others_and_from_ourselves_are_ignored() -> None:
    session = MeshSession("a", TIMEOUT)
    session.signaler_connected(0.0)
    assert session.receive(_offer("b", "c"), 0.0) == []
    assert session.receive(Introduction("a"), 0.0) == []
    assert session.receive(_offer("a", "a"), 0.0) == []


def test_early_candidates_expire() -> None:
    session = MeshSession("a", TIMEOUT)
    session.signaler_connected(0.0)
    candidate = Exchange(MessageType.CANDIDATE, "b", "a", _host("b", 1).encode())
    session.receive(candidate, 0.0)
    assert session.next_deadline() == TIMEOUT
    session.tick(TIMEOUT)
    actions = session.receive(_offer("b", "a"), TIMEOUT)
    assert not any(isinstance(action, AddCandidate) for action in actions)


def test_the_id_is_kept_across_signaler_connections() -> None:
    session = MeshSession("a", TIMEOUT)
    first = session.signaler_connected(0.0)
    session.signaler_disconnected()
    again = session.signaler_connected(5.0)
    assert first == again == [Send(Introduction("a"))]


def test_an_offer_lost_with_a_signaler_connection_is_made_again_on_reconnecting() -> None:
    mesh = Mesh("a", "b")
    mesh.start()
    mesh.carry()
    mesh.nodes["b"].online = False  # b is between signaler connections: a's offer is lost
    mesh.apply("b", mesh.nodes["b"].session.signaler_disconnected())
    (link,) = mesh.nodes["a"].open_links
    mesh.apply("a", mesh.nodes["a"].session.failed(link, mesh.now, "closed"))
    mesh.carry()
    assert not mesh.connected("a")
    mesh.nodes["b"].online = True
    mesh.apply("a", mesh.nodes["a"].session.signaler_disconnected())
    mesh.start()  # both reconnect; a offers again, b's introduction comes too soon to count
    mesh.carry()
    mesh.advance(2)
    assert mesh.full_mesh()


def test_a_reintroduction_during_a_negotiation_is_answered_within_a_second() -> None:
    session = MeshSession("a", TIMEOUT)
    session.signaler_connected(0.0)
    session.receive(Introduction("b"), 0.0)
    assert session.receive(Introduction("b"), 0.5) == []
    assert session.next_deadline() == 1.0
    opened = [action for action in session.tick(1.0) if isinstance(action, Open)]
    assert [action.peer_id for action in opened] == ["b"]


def test_a_member_we_were_connected_to_is_retried_though_it_stays_silent() -> None:
    mesh = Mesh("a", "b")
    mesh.start()
    mesh.carry()
    mesh.nodes["b"].online = False  # b's messages are lost from now on
    for node_id in ("a", "b"):
        (link,) = mesh.nodes[node_id].open_links
        mesh.apply(node_id, mesh.nodes[node_id].session.failed(link, mesh.now, "closed"))
    mesh.carry()
    mesh.advance(TIMEOUT + 1)  # a's offer went unanswered; a tries again at once
    mesh.nodes["b"].online = True
    mesh.advance(TIMEOUT * 2)
    assert mesh.full_mesh()


def test_a_member_that_left_is_given_up_after_a_few_silent_attempts() -> None:
    session = MeshSession("a", TIMEOUT, random.Random(3))
    session.signaler_connected(0.0)
    session.receive(_offer("b", "a"), 0.0)
    (link,) = [number for number in range(1, 3) if session.link_peer(number) == "b"]
    session.connected(link, 1.0)
    session.failed(link, 100.0, "closed")  # b left for good: offered again at once
    now, opens = 100.0, 1
    while (deadline := session.next_deadline()) is not None:
        now = deadline
        opens += sum(isinstance(action, Open) for action in session.tick(now))
    assert opens == 3
    assert session.open_links() == 0
