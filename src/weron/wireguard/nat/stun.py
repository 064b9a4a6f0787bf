"""STUN on a socket we share: transactions over someone else's ``sendto``, matched to their
responses by transaction id (RFC 8489), with aioice's message codec and retransmission timer.

A response completes its transaction only when it comes from where the answer is due: the
server asked, or for an RFC 5780 CHANGE-REQUEST the address the server was told to answer
from (RFC 8489 §6.3: a client checks the source of a response). An on-path observer who saw
the transaction id cannot feed us a false mapping from an address of its own.

The socket's owner hands every STUN-looking datagram to :meth:`StunAgent.datagram_received`;
responses complete their transactions, anything else (TURN Data indications, requests) is
returned to the caller. Malformed datagrams are dropped with a log line.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from aioice import stun

from weron.log import get_logger
from weron.net.endpoints import Endpoint

log = get_logger(__name__)

MAGIC_COOKIE: Final = b"\x21\x12\xa4\x42"
HEADER_SIZE: Final = 20
# CHANGE-REQUEST flags (RFC 5780 §7.2).
CHANGE_IP: Final = 0x04
CHANGE_PORT: Final = 0x02
RETRANSMISSIONS: Final = 2  # 0.5 + 1 + 2 s: the answer or its absence within 3.5 s

Send = Callable[[bytes, Endpoint], None]
Accept = Callable[[Endpoint], bool]  # whether a response may come from this source


class StunError(Exception):
    """A STUN request that got no (usable) answer."""


def is_stun(data: bytes) -> bool:
    """STUN messages start with two zero bits and carry the magic cookie at offset 4."""
    return len(data) >= HEADER_SIZE and data[0] < 0x40 and data[4:8] == MAGIC_COOKIE


def parse(data: bytes) -> stun.Message | None:
    """The message, or None (logged) for bytes that are not a well-formed STUN message."""
    try:
        return stun.parse_message(data)
    except (ValueError, struct.error, IndexError) as exc:
        log.debug("Dropped malformed STUN message", reason=str(exc) or type(exc).__name__)
        return None


def endpoint_of(value: object) -> Endpoint | None:
    """An address attribute as an endpoint (aioice decodes them to (host, port))."""
    if isinstance(value, tuple) and len(value) == 2:
        host, port = value
        if isinstance(host, str) and isinstance(port, int):
            return host, port
    return None


class StunAgent:
    """STUN transactions over a ``send`` function (the shared socket's)."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._transactions: dict[bytes, tuple[stun.Transaction, Accept]] = {}

    def send_stun(self, message: stun.Message, addr: tuple[str, int]) -> None:
        """aioice's transaction sender interface."""
        self._send(bytes(message), addr)

    async def request(
        self,
        message: stun.Message,
        server: Endpoint,
        *,
        retransmissions: int = RETRANSMISSIONS,
        integrity_key: bytes | None = None,
        long_term_credential: bool = False,
        accept: Accept | None = None,
    ) -> tuple[stun.Message, Endpoint]:
        """Send ``message`` until answered from ``server`` (or a source ``accept`` allows);
        the response and where it came from. Raises aioice's ``TransactionFailed`` (error
        response) or ``TransactionTimeout``."""
        transaction = stun.Transaction(
            message,
            server,
            self,
            retransmissions=retransmissions,
            integrity_key=integrity_key,
            long_term_credential=long_term_credential,
        )
        self._transactions[message.transaction_id] = (
            transaction,
            accept if accept is not None else server.__eq__,
        )
        try:
            response, source = await transaction.run()
            return response, (source[0], source[1])
        finally:
            del self._transactions[message.transaction_id]

    def datagram_received(self, data: bytes, source: Endpoint) -> stun.Message | None:
        """Complete the transaction a response belongs to; other messages are returned."""
        message = parse(data)
        if message is None:
            return None
        if message.message_class in (stun.Class.RESPONSE, stun.Class.ERROR):
            pending = self._transactions.get(message.transaction_id)
            if pending is None:
                log.debug("Dropped STUN response to no request of ours", source=source)
            elif not pending[1](source):
                log.info("Dropped STUN response from an address we did not ask", source=source)
            else:
                pending[0].response_received(message, source)
            return None
        return message


def answer_source(server: Endpoint, change: int, other: Endpoint | None) -> Accept:
    """Where the answer to a Binding request with CHANGE-REQUEST ``change`` may come from
    (RFC 5780 §7.2): the server's own address, its other port, or its other address (when
    the server's other address is not known, any address of another host)."""
    host, port = server
    if change & CHANGE_IP:
        if other is not None:
            return lambda source: (
                source[0] == other[0]
                and (source[1] == other[1] if change & CHANGE_PORT else source[1] == port)
            )
        return lambda source: source[0] != host
    if change & CHANGE_PORT:
        return lambda source: source[0] == host and source[1] != port
    return server.__eq__


@dataclass(frozen=True, slots=True)
class Binding:
    """What a binding response told: our mapped address, and (RFC 5780) the server's other
    address and the address the response came from."""

    mapped: Endpoint
    other: Endpoint | None
    origin: Endpoint


async def binding(
    agent: StunAgent,
    server: Endpoint,
    *,
    change: int = 0,
    other: Endpoint | None = None,
    retransmissions: int = RETRANSMISSIONS,
) -> Binding:
    """One Binding request (with CHANGE-REQUEST flags ``change``; ``other``: the server's
    OTHER-ADDRESS, where a changed-IP answer must come from); StunError without answer."""
    request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
    if change:
        request.attributes["CHANGE-REQUEST"] = change
    try:
        response, source = await agent.request(
            request,
            server,
            retransmissions=retransmissions,
            accept=answer_source(server, change, other),
        )
    except stun.TransactionError as exc:
        raise StunError(f"{server[0]}:{server[1]}: {exc}") from None
    mapped = endpoint_of(
        response.attributes.get("XOR-MAPPED-ADDRESS", response.attributes.get("MAPPED-ADDRESS"))
    )
    if mapped is None:
        raise StunError(f"{server[0]}:{server[1]}: binding response without a mapped address")
    return Binding(
        mapped,
        endpoint_of(response.attributes.get("OTHER-ADDRESS")),
        endpoint_of(response.attributes.get("RESPONSE-ORIGIN")) or source,
    )
