"""Run inside a namespace of tests/netlab/test_mdns_candidates.py (multicast routed over lo):
an mDNS responder written here byte by byte (not with weron's codec), and either plain
lookups or a real peer connection whose offerer hides its candidates behind ``.local`` names as
Chromium does. Prints one JSON line of results.

    python -m tests.netlab.mdns_probe resolve
    python -m tests.netlab.mdns_probe connect aiortc|libdatachannel
    python -m tests.netlab.mdns_probe unresolved aiortc|libdatachannel  (the engine alone)
    python -m tests.netlab.mdns_probe chromium aiortc|libdatachannel  (a real Chromium)
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import sys
import uuid
from collections.abc import Awaitable, Callable

from tests import devtools
from tests.unit.webrtc.pairs import LABEL, Events
from weron.webrtc import Backend, ChannelSpec, DataChannel, PeerConfig
from weron.webrtc.backends import load_backend
from weron.webrtc.candidates import without_candidates
from weron.webrtc.mdns_resolver import MdnsResolver

GROUP = ("224.0.0.251", 5353)
WAIT = 60.0


def _labels(name: str) -> bytes:
    return b"".join(bytes([len(part)]) + part.encode() for part in name.split(".")) + b"\x00"


class Responder(asyncio.DatagramProtocol):
    """Answers A queries for its names; before each answer it sends what a hostile host on
    the LAN might: garbage, a pointer loop, a wrong answer for another name."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names
        self.transport: asyncio.DatagramTransport | None = None
        self.queries = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if len(data) < 12 or data[2] & 0x80 or self.transport is None:
            return  # an answer (ours, looped back) or nothing
        self.queries += 1
        self.transport.sendto(b"\x00\x00\x84\x00garbage", GROUP)
        self.transport.sendto(struct.pack("!HHHHHH", 0, 0x8400, 0, 1, 0, 0) + b"\xc0\x0c", GROUP)
        for name, address in self.names.items():
            encoded = _labels(name)
            if encoded not in data:
                continue
            decoy = _labels("decoy-" + name)
            for record_name, value in ((decoy, "10.66.66.66"), (encoded, address)):
                record = struct.pack("!HHIH", 1, 0x8001, 120, 4) + socket.inet_aton(value)
                answer = struct.pack("!HHHHHH", 0, 0x8400, 0, 1, 0, 0) + record_name + record
                self.transport.sendto(answer, GROUP)


async def start_responder(names: dict[str, str]) -> Responder:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("", GROUP[1]))
    membership = socket.inet_aton(GROUP[0]) + socket.inet_aton("0.0.0.0")
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
    responder = Responder(names)
    await asyncio.get_running_loop().create_datagram_endpoint(lambda: responder, sock=sock)
    return responder


async def resolve() -> dict[str, object]:
    name = f"{uuid.uuid4()}.local"
    responder = await start_responder({name: "192.0.2.77"})
    resolver = MdnsResolver(timeout=5.0)
    try:
        return {
            "known": await resolver.resolve(name.upper()),
            "unknown": await resolver.resolve(f"{uuid.uuid4()}.local"),
            "not_local": await resolver.resolve("192.0.2.1"),
            "queries": responder.queries,
        }
    finally:
        resolver.close()


class Browser(Events):
    """The offerer as Chromium behaves: each host candidate's address replaced by a random
    ``.local`` name, which the responder knows."""

    def __init__(self, responder: Responder, deliver: Callable[[str], Awaitable[None]]) -> None:
        super().__init__()
        self.responder = responder
        self.deliver = deliver  # to the CLI peer, through the signaler in real life
        self.hidden: list[str] = []

    def hide(self, candidate: str) -> str:
        fields = candidate.split(" ")
        name = f"{uuid.uuid4()}.local"
        self.responder.names[name] = fields[4]
        fields[4] = name
        self.hidden.append(" ".join(fields))
        return " ".join(fields)

    def on_candidate(self, candidate: str) -> None:
        super().on_candidate(self.hide(candidate))

    async def _trickle(self, candidate: str) -> None:
        await self.other_described.wait()
        await self.deliver(candidate)


class CliPeer(Events):
    """The answerer as our adapter behaves: ``.local`` names resolved before the engine sees
    them. Its own candidates never reach the browser (as if they were lost): the browser
    learns its address only from the checks it receives."""

    def __init__(self) -> None:
        super().__init__()
        self.added: list[str] = []

    def on_candidate(self, candidate: str) -> None:
        self.candidates.append(candidate)


async def connect_pair(backend: Backend, *, resolve: bool = True) -> dict[str, object]:
    responder = await start_responder({})
    resolver = MdnsResolver(timeout=5.0)
    cli = CliPeer()
    answerer = backend.peer_connection(PeerConfig(), cli)

    async def deliver(candidate: str) -> None:
        line = await resolver.resolve_candidate(candidate) if resolve else candidate
        cli.added.append(line)
        await answerer.add_candidate(line)

    browser = Browser(responder, deliver)
    offerer = backend.peer_connection(PeerConfig(), browser)
    offerer.create_channel(ChannelSpec(LABEL))
    offer = await offerer.create_offer()
    in_offer = [line[2:] for line in offer.splitlines() if line.startswith("a=candidate:")]
    answer = await answerer.accept_offer(without_candidates(offer))
    await offerer.accept_answer(without_candidates(answer))
    for candidate in in_offer:  # aiortc puts its candidates in the description
        browser.on_candidate(candidate)
    browser.other_described.set()
    try:
        async with asyncio.timeout(WAIT):
            theirs: DataChannel = await cli.channels.get()
            ours: DataChannel = await browser.channels.get()
            await ours.send(b"hello over a hidden candidate")
            received = await theirs.receive()
        return {"hidden": browser.hidden, "added": cli.added, "received": received.decode()}
    finally:
        for task in browser.trickles:
            task.cancel()
        await offerer.close()
        await answerer.close()
        resolver.close()


# The page's side, driven over the DevTools protocol: an offer gathered to the end (Chromium
# hides its host candidates behind .local names), then the answer, then a message each way.
_PAGE_SCRIPT = """
window.probe = {
  async offer() {
    this.pc = new RTCPeerConnection();
    this.received = [];
    this.channel = this.pc.createDataChannel('test/primary');
    this.channel.binaryType = 'arraybuffer';
    this.channel.onmessage = (event) =>
      this.received.push(new TextDecoder().decode(event.data));
    this.opened = new Promise((resolve) => { this.channel.onopen = resolve; });
    const gathered = new Promise((resolve) => {
      this.pc.onicecandidate = (event) => { if (!event.candidate) resolve(); };
    });
    await this.pc.setLocalDescription(await this.pc.createOffer());
    await gathered;
    return this.pc.localDescription.sdp;
  },
  async answer(sdp) {
    await this.pc.setRemoteDescription({type: 'answer', sdp});
    await this.opened;
    this.channel.send('hello from chromium');
    return 'open';
  },
  async next() {
    while (this.received.length === 0) await new Promise((r) => setTimeout(r, 50));
    return this.received.shift();
  },
};
'ready'
"""
_DEVTOOLS_PORT = 9222  # inside the test's own namespace


async def chromium(backend: Backend) -> dict[str, object]:
    """Real Chromium as the offerer, our engine as the answerer: Chromium's offer reaches us
    without candidates and its .local candidates one by one through our resolver; our answer
    reaches Chromium without any, as if ours were lost."""
    resolver = MdnsResolver(timeout=5.0)
    cli = CliPeer()
    answerer = backend.peer_connection(PeerConfig(), cli)
    try:
        async with devtools.chromium("about:blank", _DEVTOOLS_PORT) as page:
            async with asyncio.timeout(WAIT):
                await page.evaluate(_PAGE_SCRIPT)
                offer = await page.evaluate("window.probe.offer()")
                hidden = [line[2:] for line in offer.splitlines() if line.startswith("a=cand")]
                answer = await answerer.accept_offer(without_candidates(offer))
                for candidate in hidden:
                    line = await resolver.resolve_candidate(candidate)
                    cli.added.append(line)
                    await answerer.add_candidate(line)
                await page.evaluate(
                    f"window.probe.answer({json.dumps(without_candidates(answer))})"
                )
                channel: DataChannel = await cli.channels.get()
                from_chromium = await channel.receive()
                await channel.send(b"hello from weron")
                to_chromium = await page.evaluate("window.probe.next()")
        return {
            "hidden": hidden,
            "added": cli.added,
            "from_chromium": from_chromium.decode(),
            "to_chromium": to_chromium,
        }
    finally:
        await answerer.close()
        resolver.close()


def main() -> None:
    mode = sys.argv[1]
    if mode == "resolve":
        result = asyncio.run(resolve())
    else:

        async def run() -> dict[str, object]:
            backend = load_backend(sys.argv[2])
            if mode == "chromium":
                return await chromium(backend)
            return await connect_pair(backend, resolve=mode == "connect")

        result = asyncio.run(run())
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
