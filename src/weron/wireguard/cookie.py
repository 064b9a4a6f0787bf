"""MAC1, MAC2 and cookie replies (WireGuard paper §5.4.4, §5.4.7).

MAC1 proves the sender knows our public key, so we answer nothing to scanners. Under load a
responder also asks for MAC2, keyed with a cookie bound to the sender's address: a cookie reply
costs the responder no Diffie-Hellman, and the sender must prove it receives at that address.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Callable
from typing import Final

from weron.net.endpoints import Endpoint
from weron.wireguard.crypto import DecryptError, hash_, mac, xaead_decrypt, xaead_encrypt
from weron.wireguard.messages import (
    COOKIE_NONCE_SIZE,
    LABEL_COOKIE,
    LABEL_MAC1,
    MAC_SIZE,
    CookieReply,
)

COOKIE_REFRESH_TIME: Final = 120.0
_ZERO_MAC: Final = bytes(MAC_SIZE)


def endpoint_bytes(endpoint: Endpoint) -> bytes:
    """The sender's address as the cookie binds it: IP address bytes then the port."""
    host, port = endpoint[0], endpoint[1]
    try:
        packed = ipaddress.ip_address(host.split("%", 1)[0]).packed
    except ValueError:
        packed = host.encode()
    return packed + port.to_bytes(2, "big")


class MacChecker:
    """Our side as a receiver: checks MAC1/MAC2 and makes cookie replies."""

    def __init__(self, public_key: bytes, random: Callable[[int], bytes] = os.urandom) -> None:
        self._mac1_key = hash_(LABEL_MAC1, public_key)
        self._cookie_key = hash_(LABEL_COOKIE, public_key)
        self._random = random
        self._secret = random(32)
        self._secret_time = -COOKIE_REFRESH_TIME

    def mac1_valid(self, message: bytes, mac1_offset: int) -> bool:
        expected = mac(self._mac1_key, message[:mac1_offset])
        return hmac.compare_digest(expected, message[mac1_offset : mac1_offset + MAC_SIZE])

    def mac2_valid(self, message: bytes, mac1_offset: int, source: Endpoint, now: float) -> bool:
        mac2_offset = mac1_offset + MAC_SIZE
        expected = mac(self._cookie(source, now), message[:mac2_offset])
        return hmac.compare_digest(expected, message[mac2_offset : mac2_offset + MAC_SIZE])

    def cookie_reply(
        self, message: bytes, mac1_offset: int, sender: int, source: Endpoint, now: float
    ) -> CookieReply:
        """The reply that hands ``source`` its cookie, sealed to the MAC1 it sent."""
        nonce = self._random(COOKIE_NONCE_SIZE)
        mac1 = message[mac1_offset : mac1_offset + MAC_SIZE]
        sealed = xaead_encrypt(self._cookie_key, nonce, self._cookie(source, now), mac1)
        return CookieReply(sender, nonce, sealed)

    def _cookie(self, source: Endpoint, now: float) -> bytes:
        if now - self._secret_time >= COOKIE_REFRESH_TIME:
            self._secret = self._random(32)
            self._secret_time = now
        return mac(self._secret, endpoint_bytes(source))


class MacGenerator:
    """Our side as a sender to one peer: MAC1 with its public key, MAC2 with its latest cookie."""

    __slots__ = ("_cookie", "_cookie_key", "_cookie_time", "_last_mac1", "_mac1_key")

    def __init__(self, peer_public_key: bytes) -> None:
        self._mac1_key = hash_(LABEL_MAC1, peer_public_key)
        self._cookie_key = hash_(LABEL_COOKIE, peer_public_key)
        self._cookie: bytes | None = None
        self._cookie_time = 0.0
        self._last_mac1: bytes | None = None

    def add_macs(self, message: bytes, now: float) -> bytes:
        """``message`` (MAC fields still zero) with MAC1, and MAC2 when we hold a fresh cookie."""
        mac1_offset = len(message) - 2 * MAC_SIZE
        body = message[:mac1_offset]
        mac1 = mac(self._mac1_key, body)
        self._last_mac1 = mac1
        mac2 = _ZERO_MAC
        if self._cookie is not None and now - self._cookie_time < COOKIE_REFRESH_TIME:
            mac2 = mac(self._cookie, body + mac1)
        return body + mac1 + mac2

    def consume_cookie_reply(self, reply: CookieReply, now: float) -> None:
        """Store the cookie; raises DecryptError unless it answers the last MAC1 we sent."""
        if self._last_mac1 is None:
            raise DecryptError("no message of ours awaits a cookie")
        self._cookie = xaead_decrypt(
            self._cookie_key, reply.nonce, reply.encrypted_cookie, self._last_mac1
        )
        self._cookie_time = now
