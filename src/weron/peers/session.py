"""Offer/answer negotiation with every member of a community, as a state machine without I/O
(docs/wire-protocol.md#signaling-messages; the rules we add are in docs/peer-sessions.md).

:class:`MeshSession` is the whole process's view: our one id (kept across signaler
reconnects) and, per remote member, the peer connections ("links") we negotiate with it.
It takes signaling messages and local events with ``now`` and returns :data:`Action`\\ s; the
adapter (:mod:`weron.peers.adapter`) carries them out (backend calls, sends, logs) and feeds
the results back. Each link goes through explicit phases::

    NEW ──local offer──▶ HAVE_LOCAL_OFFER ──answer──▶ STABLE ──ICE──▶ CONNECTED ──▶ CLOSED
    (remote offer) HAVE_REMOTE_OFFER ──local answer──▶ STABLE       │  ▲
                                           ICE lost the path: ▼  │ it came back
                                                            INTERRUPTED

and an event a phase does not expect is a named :class:`Notice`, never a silent mix of flags.
A member has at most two links: the current one and a replacement being negotiated beside a
live one (make before break: an offer never tears down a working connection; the new link
takes over once it connects).
"""

from __future__ import annotations

import enum
import logging
import random
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from weron.signaler_client.messages import (
    Exchange,
    Introduction,
    MessageType,
    SignalingMessage,
    SignalingMessageError,
    decode_session_description,
    encode_session_description,
)

MAX_ID_LENGTH: Final = 256  # UUIDs, MAC addresses and --id values are far shorter
MAX_SDP_LENGTH: Final = 64 << 10
MAX_CANDIDATE_LENGTH: Final = 1024
MAX_NEGOTIATING: Final = 64  # links not yet connected, all members together
MAX_DEFERRED: Final = 256  # introductions waiting for a free negotiation slot
MAX_EARLY_CANDIDATES: Final = 64  # per member, before the description they belong to
MAX_EARLY_SENDERS: Final = 256
MAX_HELD_LOCAL: Final = 64  # our candidates waiting for our description to go out
REINTRODUCTION_GUARD: Final = 1.0  # s: at most one new link per member this often
RETRY_LIMIT: Final = 8  # failed attempts in a row before waiting for a new introduction
SILENT_RETRY_LIMIT: Final = 3  # the same, when the member does not even answer (it left?)
RETRY_CAP: Final = 8  # the longest retry delay, in timeouts


class Phase(enum.StrEnum):
    NEW = "new"
    HAVE_LOCAL_OFFER = "have-local-offer"
    HAVE_REMOTE_OFFER = "have-remote-offer"
    STABLE = "stable"
    CONNECTED = "connected"
    INTERRUPTED = "interrupted"  # was connected; ICE lost the path, a replacement is offered
    CLOSED = "closed"


NEGOTIATING: Final = frozenset(
    {Phase.NEW, Phase.HAVE_LOCAL_OFFER, Phase.HAVE_REMOTE_OFFER, Phase.STABLE}
)
UNANSWERED: Final = frozenset({Phase.NEW, Phase.HAVE_LOCAL_OFFER})
WORKED: Final = frozenset({Phase.CONNECTED, Phase.INTERRUPTED})  # replaced, not torn down


# Actions: what the adapter does for the session.


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``message`` to the signaler (dropped if it is not connected)."""

    message: SignalingMessage


@dataclass(frozen=True, slots=True)
class Open:
    """Create peer connection ``link`` to ``peer_id``. As the initiator: create the data
    channels and an offer, then report it with :meth:`MeshSession.local_description`."""

    link: int
    peer_id: str
    initiator: bool


@dataclass(frozen=True, slots=True)
class Answer:
    """Set the remote offer on ``link``, create the answer, report it as the local
    description. Actions on one link must run in the order they are returned."""

    link: int
    sdp: str


@dataclass(frozen=True, slots=True)
class Complete:
    """Set the remote answer on ``link``."""

    link: int
    sdp: str


@dataclass(frozen=True, slots=True)
class AddCandidate:
    link: int
    candidate: str


@dataclass(frozen=True, slots=True)
class Close:
    """Close ``link``: its channels end, and nothing about it is reported any more."""

    link: int


@dataclass(frozen=True, slots=True)
class Notice:
    """Something worth a log line: ``level`` is a :mod:`logging` level."""

    level: int
    event: str
    fields: Mapping[str, Any] = field(default_factory=dict)


Action = Send | Open | Answer | Complete | AddCandidate | Close | Notice


@dataclass(slots=True, eq=False)
class _Link:
    number: int
    peer_id: str
    initiator: bool
    created: float
    phase: Phase = Phase.NEW
    remote_described: bool = False
    was_connected: bool = False
    interrupted_at: float = 0.0
    # Our candidates wait until our description is on its way: a peer must not see
    # candidates for a connection it has not heard of (the Go peers drop those).
    held_local: list[str] | None = field(default_factory=list)
    pending_remote: list[str] = field(default_factory=list)
    local_types: set[str] = field(default_factory=set)
    remote_types: set[str] = field(default_factory=set)


@dataclass(slots=True, eq=False)
class _Member:
    peer_id: str
    current: _Link | None = None
    replacement: _Link | None = None  # negotiated beside a live current link
    failures: int = 0  # attempts in a row that did not connect
    retry_at: float | None = None  # offer again then, unless a link is on its way
    reoffer_at: float | None = None  # offer again then, unless connected (a re-introduction)
    had_connection: bool = False  # we were connected: keep trying after a silence too
    warned: bool = False  # the ICE failure warning was given since the last connection

    def newest(self) -> _Link | None:
        return self.replacement or self.current

    def links(self) -> list[_Link]:
        return [link for link in (self.current, self.replacement) if link is not None]

    def worked(self) -> bool:
        """The current link is (or was, until ICE lost the path) connected."""
        return self.current is not None and self.current.phase in WORKED


def candidate_type(line: str) -> str:
    """``host``, ``srflx``, ``prflx`` or ``relay`` (``?`` when the line does not say)."""
    words = line.split()
    for index, word in enumerate(words[:-1]):
        if word == "typ":
            return words[index + 1][:8]
    return "?"


class MeshSession:
    """Negotiation with every member, for one process: see the module docstring.

    ``timeout`` bounds every negotiation (a link not connected by then is closed) and paces
    the retries; ``rng`` jitters them (tests pass a seeded one)."""

    def __init__(self, my_id: str, timeout: float, rng: random.Random | None = None) -> None:
        self.id = my_id
        self.timeout = timeout
        self._rng = rng if rng is not None else random.Random()
        self._members: dict[str, _Member] = {}
        self._links: dict[int, _Link] = {}
        self._next_link = 1
        self._signaler_up = False
        self._deferred: OrderedDict[str, None] = OrderedDict()  # newest last
        self._early: OrderedDict[str, tuple[float, list[str]]] = OrderedDict()

    # Queries

    def link_peer(self, link: int) -> str | None:
        found = self._links.get(link)
        return found.peer_id if found is not None else None

    def phase(self, peer_id: str) -> Phase | None:
        """The phase of the member's newest link (None: no link)."""
        member = self._members.get(peer_id)
        link = member.newest() if member is not None else None
        return link.phase if link is not None else None

    def connected_peers(self) -> list[str]:
        return [
            peer_id
            for peer_id, member in self._members.items()
            if member.current is not None and member.current.phase is Phase.CONNECTED
        ]

    def negotiating(self) -> int:
        return sum(1 for link in self._links.values() if link.phase in NEGOTIATING)

    def open_links(self) -> int:
        return len(self._links)

    def _deadline(self, link: _Link) -> float | None:
        if link.phase in NEGOTIATING:
            return link.created + self.timeout
        if link.phase is Phase.INTERRUPTED:
            return link.interrupted_at + self.timeout
        return None

    def next_deadline(self) -> float | None:
        """When :meth:`tick` has something to do next."""
        times = [
            deadline
            for link in self._links.values()
            if (deadline := self._deadline(link)) is not None
        ]
        if self._signaler_up:  # else they wait for signaler_connected: nothing to tick for
            for member in self._members.values():
                times += [t for t in (member.retry_at, member.reoffer_at) if t is not None]
        times += [created + self.timeout for created, _ in self._early.values()]
        return min(times, default=None)

    # The signaler connection

    def signaler_connected(self, now: float) -> list[Action]:
        """Introduce ourselves (again): links stay as they are; members we lost while the
        signaler was away are offered to again."""
        self._signaler_up = True
        actions: list[Action] = [Send(Introduction(self.id))]
        for member in list(self._members.values()):
            newest = member.newest()
            if newest is not None and newest.initiator and newest.phase in UNANSWERED:
                # Our offer may have gone into the connection that just dropped.
                actions += self._offer_or_defer(member.peer_id, now)
            elif member.retry_at is not None and member.retry_at <= now:
                actions += self._retry(member, now)
        return actions

    def signaler_disconnected(self) -> list[Action]:
        self._signaler_up = False
        return []

    # Signaling messages

    def receive(self, message: SignalingMessage, now: float) -> list[Action]:
        if len(message.sender) > MAX_ID_LENGTH:
            return [_notice(logging.INFO, "Ignoring message with an oversized id", message)]
        if message.sender == self.id:
            return []  # never ourselves (a forged or a misconfigured --id)
        if isinstance(message, Introduction):
            return self._introduced(message.sender, now)
        if message.recipient != self.id:
            return []
        if message.type is MessageType.CANDIDATE:
            return self._remote_candidate(message, now)
        if len(message.payload) > MAX_SDP_LENGTH:
            return [_notice(logging.INFO, "Ignoring oversized session description", message)]
        try:
            kind, sdp = decode_session_description(message.payload)
        except SignalingMessageError as exc:
            return [
                Notice(
                    logging.INFO,
                    "Ignoring malformed session description",
                    {"peer": message.sender, "reason": str(exc)},
                )
            ]
        if kind is not message.type:
            return [
                _notice(logging.INFO, "Ignoring session description of the wrong type", message)
            ]
        if kind is MessageType.OFFER:
            return self._offered(message.sender, sdp, now)
        return self._answered(message.sender, sdp)

    def _introduced(self, peer_id: str, now: float) -> list[Action]:
        member = self._members.get(peer_id)
        if member is not None:
            current = member.current
            if current is not None and current.phase is Phase.CONNECTED:
                # A member whose signaler connection came back, or a forged introduction:
                # the working connection stays.
                return [Notice(logging.DEBUG, "Keeping live connection", {"peer": peer_id})]
            newest = member.newest()
            if newest is not None and now - newest.created < REINTRODUCTION_GUARD:
                # A burst of introductions makes one link a second; the last one still counts
                # (the member may have missed our offer while it was reconnecting).
                member.reoffer_at = newest.created + REINTRODUCTION_GUARD
                return []
            member.failures = 0
        return self._offer_or_defer(peer_id, now)

    def _offer_or_defer(self, peer_id: str, now: float) -> list[Action]:
        if not self._signaler_up:
            return []
        if self.negotiating() >= MAX_NEGOTIATING:
            self._deferred.pop(peer_id, None)
            self._deferred[peer_id] = None
            if len(self._deferred) > MAX_DEFERRED:
                self._deferred.popitem(last=False)
            return [
                Notice(
                    logging.DEBUG,
                    "Deferring introduction: too many negotiations",
                    {"peer": peer_id},
                )
            ]
        member = self._members.setdefault(peer_id, _Member(peer_id))
        member.retry_at = member.reoffer_at = None
        actions: list[Action] = [Notice(logging.DEBUG, "Offering to peer", {"peer": peer_id})]
        link = self._new_link(member, initiator=True, now=now, actions=actions)
        actions.append(Open(link.number, peer_id, initiator=True))
        return actions

    def _new_link(
        self, member: _Member, *, initiator: bool, now: float, actions: list[Action]
    ) -> _Link:
        """A new link for ``member``: beside a live current link as its replacement, else
        instead of whatever negotiation was going on."""
        link = _Link(self._next_link, member.peer_id, initiator, now)
        self._next_link += 1
        self._links[link.number] = link
        if member.worked():
            if member.replacement is not None:
                actions += self._close(member.replacement)
            member.replacement = link
        else:
            for old in member.links():
                actions += self._close(old)
            member.current = link
            member.replacement = None
        return link

    def _offered(self, peer_id: str, sdp: str, now: float) -> list[Action]:
        member = self._members.get(peer_id)
        newest = member.newest() if member is not None else None
        if (
            newest is not None
            and newest.initiator
            and newest.phase
            in (
                Phase.NEW,
                Phase.HAVE_LOCAL_OFFER,
            )
        ):
            # Glare: both offered at once. The larger id keeps its offer, the other answers.
            if self.id > peer_id:
                return [
                    Notice(logging.DEBUG, "Ignoring offer: glare, ours wins", {"peer": peer_id})
                ]
        elif self.negotiating() >= MAX_NEGOTIATING:
            return [_notice(logging.INFO, "Ignoring offer: too many negotiations", peer_id)]
        if member is None:
            member = self._members[peer_id] = _Member(peer_id)
        member.retry_at = member.reoffer_at = None
        self._deferred.pop(peer_id, None)
        actions: list[Action] = []
        link = self._new_link(member, initiator=False, now=now, actions=actions)
        link.phase = Phase.HAVE_REMOTE_OFFER
        link.remote_described = True
        actions += [Open(link.number, peer_id, initiator=False), Answer(link.number, sdp)]
        _, early = self._early.pop(peer_id, (now, []))
        for candidate in early:
            actions += self._add_remote(link, candidate)
        return actions

    def _answered(self, peer_id: str, sdp: str) -> list[Action]:
        member = self._members.get(peer_id)
        link = member.newest() if member is not None else None
        if link is None or link.phase is not Phase.HAVE_LOCAL_OFFER:
            return [Notice(logging.DEBUG, "Ignoring unexpected answer", {"peer": peer_id})]
        link.phase = Phase.STABLE
        link.remote_described = True
        actions: list[Action] = [Complete(link.number, sdp)]
        pending, link.pending_remote = link.pending_remote, []
        for candidate in pending:
            actions += self._add_remote(link, candidate)
        return actions

    def _remote_candidate(self, message: Exchange, now: float) -> list[Action]:
        if len(message.payload) > MAX_CANDIDATE_LENGTH:
            return [_notice(logging.INFO, "Ignoring oversized candidate", message)]
        try:
            candidate = message.payload.decode("utf-8")
        except UnicodeDecodeError:
            return [_notice(logging.DEBUG, "Ignoring candidate that is not UTF-8", message)]
        member = self._members.get(message.sender)
        link = member.newest() if member is not None else None
        if link is not None and link.phase is not Phase.CONNECTED:
            if link.remote_described:
                return self._add_remote(link, candidate)
            if len(link.pending_remote) < MAX_EARLY_CANDIDATES:
                link.pending_remote.append(candidate)
            return []
        if link is not None and link.phase is Phase.CONNECTED:
            # Late candidates of the connected link still help ICE pick a better pair.
            return self._add_remote(link, candidate)
        # Before the offer they belong to: kept a while, bounded.
        created, early = self._early.get(message.sender, (now, []))
        if message.sender not in self._early:
            if len(self._early) >= MAX_EARLY_SENDERS:
                return []
            self._early[message.sender] = (created, early)
        if len(early) < MAX_EARLY_CANDIDATES:
            early.append(candidate)
        return []

    def _add_remote(self, link: _Link, candidate: str) -> list[Action]:
        link.remote_types.add(candidate_type(candidate))
        return [AddCandidate(link.number, candidate)]

    # Local events (from the backend, through the adapter)

    def local_description(self, link_number: int, sdp: str) -> list[Action]:
        link = self._links.get(link_number)
        if link is None:
            return []
        if link.phase is Phase.NEW and link.initiator:
            link.phase = Phase.HAVE_LOCAL_OFFER
            kind = MessageType.OFFER
        elif link.phase is Phase.HAVE_REMOTE_OFFER:
            link.phase = Phase.STABLE
            kind = MessageType.ANSWER
        else:
            return [
                Notice(
                    logging.DEBUG,
                    "Ignoring unexpected local description",
                    {"peer": link.peer_id, "phase": link.phase.value},
                )
            ]
        payload = encode_session_description(kind, sdp)
        actions: list[Action] = [Send(Exchange(kind, self.id, link.peer_id, payload))]
        held, link.held_local = link.held_local or [], None
        actions += [self._candidate_message(link, candidate) for candidate in held]
        return actions

    def local_candidate(self, link_number: int, candidate: str) -> list[Action]:
        link = self._links.get(link_number)
        if link is None:
            return []
        link.local_types.add(candidate_type(candidate))
        if link.held_local is not None:
            if len(link.held_local) < MAX_HELD_LOCAL:
                link.held_local.append(candidate)
            return []
        return [self._candidate_message(link, candidate)]

    def _candidate_message(self, link: _Link, candidate: str) -> Send:
        return Send(Exchange(MessageType.CANDIDATE, self.id, link.peer_id, candidate.encode()))

    def connected(self, link_number: int, now: float) -> list[Action]:
        link = self._links.get(link_number)
        if link is None:
            return []
        member = self._members[link.peer_id]
        link.phase = Phase.CONNECTED
        link.was_connected = True
        member.failures = 0
        member.retry_at = member.reoffer_at = None
        member.warned = False
        member.had_connection = True
        actions: list[Action] = []
        if member.replacement is link:
            if member.current is not None:
                actions += self._close(member.current)
            member.current, member.replacement = link, None
            actions.append(Notice(logging.DEBUG, "Replaced connection", {"peer": link.peer_id}))
        return actions + self._serve_deferred(now)

    def disconnected(self, link_number: int, now: float) -> list[Action]:
        """ICE lost the path (it may still come back): a connection that worked is offered
        again at once, beside it, instead of after the library gives up 15–30 s later."""
        link = self._links.get(link_number)
        if link is None:
            return []
        member = self._members[link.peer_id]
        if link is not member.current or link.phase is not Phase.CONNECTED:
            return self.failed(link_number, now, "disconnected")
        link.phase = Phase.INTERRUPTED
        link.interrupted_at = now
        actions: list[Action] = [
            Notice(
                logging.INFO,
                "Connection to peer interrupted, offering again",
                {"peer": link.peer_id},
            )
        ]
        if member.replacement is None and self._signaler_up:
            replacement = self._new_link(member, initiator=True, now=now, actions=actions)
            actions.append(Open(replacement.number, member.peer_id, initiator=True))
        elif member.replacement is None:
            member.retry_at = now  # offered as soon as the signaler is back
        return actions

    def failed(self, link_number: int, now: float, reason: str) -> list[Action]:
        """The link ended (failed, closed, or the backend gave up on it)."""
        link = self._links.get(link_number)
        if link is None:
            return []
        member = self._members[link.peer_id]
        actions = self._close(link)
        actions.append(
            Notice(logging.DEBUG, "Peer connection ended", {"peer": link.peer_id, "reason": reason})
        )
        if member.current is None and member.replacement is None:
            actions += self._after_failure(member, link, now)
        return actions + self._serve_deferred(now)

    def drop(self, peer_id: str, now: float) -> list[Action]:
        """The application says the member stopped answering (long before ICE notices): as
        if ICE had lost the path, offer again beside the silent link, which may still come
        back."""
        member = self._members.get(peer_id)
        if member is None or member.current is None:
            return []
        return self.disconnected(member.current.number, now)

    def _after_failure(self, member: _Member, link: _Link, now: float) -> list[Action]:
        """Retry a member that broke or could not be reached through ICE; forget one that
        never answered (gone, or an id nobody holds)."""
        if link.was_connected:
            member.failures = 0
            member.retry_at = now
            return self._retry(member, now) if self._signaler_up else []
        if not link.remote_described and not member.had_connection:
            return []
        member.failures += 1
        limit = RETRY_LIMIT if link.remote_described else SILENT_RETRY_LIMIT
        if member.failures >= limit:
            member.retry_at = None
            return [
                Notice(
                    logging.INFO,
                    "Giving up on peer until it introduces itself again",
                    {"peer": member.peer_id, "attempts": member.failures},
                )
            ]
        # A member we were connected to is tried again at once the first time: its answer
        # was most likely lost with a signaler connection.
        exponent = member.failures - (2 if member.had_connection else 1)
        delay = 0.0 if exponent < 0 else self.timeout * min(RETRY_CAP, 2**exponent)
        member.retry_at = now + delay * self._rng.uniform(0.5, 1.0)
        return []

    def _retry(self, member: _Member, now: float) -> list[Action]:
        """Offer again, unless a link is on its way already (an interrupted one is not)."""
        current = member.current
        busy = current is not None and current.phase is not Phase.INTERRUPTED
        if busy or member.replacement is not None:
            member.retry_at = None
            return []
        return self._offer_or_defer(member.peer_id, now)

    def _serve_deferred(self, now: float) -> list[Action]:
        actions: list[Action] = []
        while self._deferred and self.negotiating() < MAX_NEGOTIATING:
            peer_id, _ = self._deferred.popitem(last=True)  # newest first: a flood is old
            actions += self._offer_or_defer(peer_id, now)
        return actions

    def _close(self, link: _Link) -> list[Action]:
        if link.phase is Phase.CLOSED:
            return []
        link.phase = Phase.CLOSED
        del self._links[link.number]
        member = self._members[link.peer_id]
        if member.current is link:
            member.current, member.replacement = member.replacement, None
        elif member.replacement is link:
            member.replacement = None
        return [Close(link.number)]

    # Time

    def tick(self, now: float) -> list[Action]:
        actions: list[Action] = []
        for link in list(self._links.values()):
            deadline = self._deadline(link)
            if deadline is not None and deadline <= now and link.phase is not Phase.CLOSED:
                actions += self._timed_out(link, now)
        for peer_id, (created, _) in list(self._early.items()):
            if now - created >= self.timeout:
                del self._early[peer_id]
        if self._signaler_up:
            for member in list(self._members.values()):
                if member.reoffer_at is not None and member.reoffer_at <= now:
                    member.reoffer_at = None
                    if not (member.current and member.current.phase is Phase.CONNECTED):
                        actions += self._offer_or_defer(member.peer_id, now)
                if member.retry_at is not None and member.retry_at <= now:
                    actions += self._retry(member, now)
        for peer_id, member in list(self._members.items()):
            idle = member.retry_at is None and member.reoffer_at is None
            if not member.links() and idle and not member.had_connection:
                del self._members[peer_id]
        return actions + self._serve_deferred(now)

    def _timed_out(self, link: _Link, now: float) -> list[Action]:
        member = self._members[link.peer_id]
        actions: list[Action] = []
        if link.remote_described and not member.warned and not link.was_connected:
            member.warned = True
            actions.append(
                Notice(
                    logging.WARNING,
                    "Could not connect to peer",
                    {
                        "peer": link.peer_id,
                        "timeout": self.timeout,
                        "local_candidates": sorted(link.local_types) or ["none"],
                        "remote_candidates": sorted(link.remote_types) or ["none"],
                        "hint": "no ICE candidate pair worked; behind a NAT, give a reachable "
                        "STUN server (--ice stun:host:port) or a TURN server "
                        "(--ice user:password@turn:host:port); retrying",
                    },
                )
            )
        elif not link.remote_described:
            actions.append(
                Notice(logging.DEBUG, "Peer did not answer the offer", {"peer": link.peer_id})
            )
        actions += self._close(link)
        if member.current is None:
            actions += self._after_failure(member, link, now)
        return actions


def _notice(level: int, event: str, about: SignalingMessage | str) -> Notice:
    sender = about if isinstance(about, str) else about.sender
    return Notice(level, event, {"peer": sender[:64]})
