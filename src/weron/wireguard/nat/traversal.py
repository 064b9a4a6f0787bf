"""NAT traversal on a WireGuard endpoint's own socket (the asyncio glue of ``weron.wireguard.nat``).

STUN and TURN share the socket with WireGuard: the endpoint hands us what is not WireGuard,
and the datagrams WireGuard addresses to :class:`Relayed` endpoints, which we wrap in TURN
ChannelData. We learn our candidates (local, STUN-mapped, relayed), and for every peer run
:class:`PeerPaths`: probes along its candidates until a path answers, the route in use
reported through ``on_route``, and new candidates announced through ``on_candidates`` when a
lost path or a periodic check finds that our NAT mapping or relay changed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Final

from weron.log import get_logger
from weron.net.endpoints import Endpoint, Relayed
from weron.wireguard.device import WireGuardPeer
from weron.wireguard.endpoint import WireGuardEndpoint
from weron.wireguard.nat.discover import resolve
from weron.wireguard.nat.paths import (
    KEEPALIVE,
    PUNCH_INTERVAL,
    Candidate,
    Kind,
    PeerPaths,
    Route,
    Taken,
)
from weron.wireguard.nat.stun import StunAgent, StunError, binding, is_stun
from weron.wireguard.nat.turn import TurnClient, TurnError, TurnServer, is_channel_data

log = get_logger(__name__)

REFRESH_INTERVAL: Final = 30.0  # re-check our mapping and relay this often

RouteHandler = Callable[[WireGuardPeer, Route | None], None]
CandidatesHandler = Callable[[tuple[Candidate, ...]], None]


class Traversal:
    """Candidates of our socket, and paths to every peer added with :meth:`add`."""

    def __init__(
        self,
        endpoint: WireGuardEndpoint,
        *,
        stun: Sequence[tuple[str, int]] = (),
        turn: TurnServer | None = None,
        on_route: RouteHandler | None = None,
        on_candidates: CandidatesHandler | None = None,
    ) -> None:
        self._wg = endpoint
        self._stun_names = list(stun)
        self._turn_server = turn
        self._on_route = on_route
        self.on_candidates = on_candidates
        self.agent = StunAgent(endpoint.sendto)
        self.turn: TurnClient | None = None
        self._stun: list[Endpoint] = []
        self._host: tuple[Candidate, ...] = ()
        self.candidates: tuple[Candidate, ...] = ()
        self._paths: dict[bytes, tuple[WireGuardPeer, PeerPaths]] = {}
        self._routes: dict[bytes, Route | None] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._refreshing: asyncio.Task[None] | None = None
        endpoint.on_foreign = self._foreign
        endpoint.send_foreign = self._send_relayed

    async def start(self, host: Sequence[Endpoint]) -> tuple[Candidate, ...]:
        """Learn our candidates (``host``: our socket's local addresses), start probing."""
        self._host = tuple(Candidate(Kind.HOST, endpoint) for endpoint in host)
        for name, port in self._stun_names:
            try:
                self._stun.append(await asyncio.to_thread(resolve, name, port))
            except OSError as exc:
                log.warning("Cannot resolve the STUN server", server=name, reason=str(exc))
        if self._turn_server is not None:
            try:
                server = await asyncio.to_thread(
                    resolve, self._turn_server.host, self._turn_server.port
                )
            except OSError as exc:
                log.warning("Cannot resolve the TURN server", server=self._turn_server.host)
                raise TurnError(f"cannot resolve {self._turn_server.host}: {exc}") from None
            self.turn = TurnClient(
                self.agent,
                self._wg.sendto,
                server,
                self._turn_server.username,
                self._turn_server.password,
                on_lost=self._refresh_soon,
            )
        self.candidates = await self._gather()
        self._tasks = [
            asyncio.create_task(self._probe_loop()),
            asyncio.create_task(self._refresh_loop()),
        ]
        return self.candidates

    async def _gather(self) -> tuple[Candidate, ...]:
        candidates = list(self._host)
        for server in self._stun:
            try:
                mapped = (await binding(self.agent, server)).mapped
            except StunError as exc:
                log.warning("No answer from the STUN server", reason=str(exc))
                continue
            candidate = Candidate(Kind.SRFLX, mapped)
            if all(c.endpoint != mapped for c in candidates):
                candidates.append(candidate)
        if self.turn is not None:
            if not (self.turn.allocated and await self.turn.check()):
                try:
                    await self.turn.allocate()
                except TurnError as exc:
                    log.warning("No TURN relay", reason=str(exc))
            if self.turn.relayed is not None:
                candidates.append(Candidate(Kind.RELAY, self.turn.relayed))
            seen = self.turn.mapped
            if seen is not None and all(c.endpoint != seen for c in candidates):
                candidates.insert(len(self._host), Candidate(Kind.SRFLX, seen))
        log.info("Candidates", candidates=[c.encode() for c in candidates])
        return tuple(candidates)

    # -- peers -----------------------------------------------------------------------------

    def add(
        self, peer: WireGuardPeer, candidates: tuple[Candidate, ...], issued: int | None = None
    ) -> None:
        """Find a path to ``peer`` (again, with the candidates of a card not seen yet: they
        add to those known, see :class:`PeerPaths`; ``issued``: the card is signed by the
        peer, made then)."""
        now = self._wg.now
        known = self._paths.get(peer.public_key)
        if known is not None:
            paths = known[1]
            if paths.update(candidates, now, issued) is Taken.REFUSED:
                if issued is not None:
                    log.debug("Ignoring a signed card older than those held for its key")
                elif paths.signed:
                    log.info("Ignoring an unsigned card for a key whose cards are signed")
                else:
                    log.debug("Ignoring a card while those held for its key are on trial")
            return
        paths = PeerPaths(candidates, now, issued)
        self._paths[peer.public_key] = (peer, paths)
        self._wg.set_persistent_keepalive(peer, KEEPALIVE)
        if peer.endpoint is None and paths.candidates:
            peer.endpoint = paths.candidates[0].endpoint

    def remove(self, peer: WireGuardPeer) -> None:
        self._paths.pop(peer.public_key, None)
        self._routes.pop(peer.public_key, None)

    def route(self, peer: WireGuardPeer) -> Route | None:
        return self._routes.get(peer.public_key)

    async def _probe_loop(self) -> None:
        while True:
            await asyncio.sleep(PUNCH_INTERVAL / 2)
            self.step()

    def step(self) -> None:
        """Probe what is due, report route changes."""
        now = self._wg.now
        relay = self.turn is not None and self.turn.allocated
        for key, (peer, paths) in list(self._paths.items()):
            targets, lost = paths.step(now, peer.last_received, peer.endpoint, relay)
            if lost:
                log.info("Path to a peer lost: punching again")
                self._refresh_soon()
            if targets:
                probe = self._wg.probe(peer)
                if probe is not None:
                    for target in targets:
                        self._wg.sendto(probe, target)
            route = paths.route(peer.endpoint) if paths.alive else None
            if route != self._routes.get(key):
                self._routes[key] = route
                if self._on_route is not None:
                    self._on_route(peer, route)

    # -- candidates ------------------------------------------------------------------------

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_INTERVAL)
            self._refresh_soon()

    def _refresh_soon(self) -> None:
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.create_task(self._refresh())

    async def _refresh(self) -> None:
        candidates = await self._gather()
        if candidates != self.candidates:
            log.info("Our candidates changed: announcing them again")
            self.candidates = candidates
            if self.on_candidates is not None:
                self.on_candidates(candidates)

    # -- the shared socket -----------------------------------------------------------------

    def _foreign(self, data: bytes, source: Endpoint) -> None:
        turn = self.turn
        if turn is not None and source == turn.server and is_channel_data(data):
            relayed = turn.unwrap(data)
            if relayed is not None:
                self._wg.receive_wireguard(relayed[0], Relayed(*relayed[1]))
            return
        if not is_stun(data):
            log.debug("Dropped a datagram that is neither WireGuard nor STUN", source=source)
            return
        message = self.agent.datagram_received(data, source)
        if message is not None and turn is not None and source == turn.server:
            relayed = turn.indication(message)
            if relayed is not None:
                self._wg.receive_wireguard(relayed[0], Relayed(*relayed[1]))
                return
        if message is not None:
            log.debug("Dropped an unexpected STUN message", source=source)

    def _send_relayed(self, data: bytes, endpoint: Endpoint) -> None:
        if self.turn is not None:
            self.turn.send(data, (endpoint[0], endpoint[1]))

    async def close(self) -> None:
        for task in [*self._tasks, self._refreshing]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self.turn is not None:
            await self.turn.close()
