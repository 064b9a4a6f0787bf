"""Meeting without a server: member records in the BitTorrent mainline DHT, as BEP 44 mutable
items (libtorrent).

A room has ``SLOTS`` items. All are signed with one Ed25519 key derived from the room secret,
so only members can write them; their salts come from the room name and the slot number; a
record's value is sealed with ChaCha20-Poly1305 under a key derived from the room secret (the
salt is the associated data, so a record cannot be moved to another slot), so only members can
read them. Someone with another key derives another signing key: the items it looks up and
writes are other items altogether — it can neither find nor forge ours.

A record is a card and its publication time. Which records count, which slot is ours and when
to read again are the rules of :mod:`weron.rendezvous.slots`; here one loop reads every slot
on that schedule, hands on the cards that are new or changed, and publishes our record when
our slot needs it or every ``REFRESH`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import struct
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from weron.log import get_logger
from weron.rendezvous.card import Card, CardError, decode_card
from weron.rendezvous.room import RoomSecrets
from weron.rendezvous.slots import (
    REFRESH,
    SLOTS,
    PollSchedule,
    Record,
    SlotChoice,
    choose_slot,
)
from weron.wireguard.nat.discover import local_address_toward, resolve

if TYPE_CHECKING:
    import libtorrent as lt

log = get_logger(__name__)

LOOKUP_TIMEOUT: Final = 10.0
MAX_VALUE: Final = 900  # BEP 44: at most 1000 bytes, bencoding included
_NONCE: Final = 12
_PUBLISHED: Final = struct.Struct("!Q")


class RecordError(ValueError):
    """A DHT value that is not a record of this room."""


@dataclass(frozen=True, slots=True)
class RoomKeys:
    """Everything the records of one room are made with."""

    seed: bytes  # Ed25519 private key seed
    public_key: bytes
    cipher_key: bytes
    salts: tuple[bytes, ...]

    @classmethod
    def derive(cls, secrets: RoomSecrets) -> RoomKeys:
        def expand(label: str) -> bytes:
            return HKDFExpand(hashes.SHA256(), 32, b"weron gonet dht " + label.encode()).derive(
                secrets.dht
            )

        # "2": records say when they were published (version 1 said when they expire, and its
        # members would misread ours): the two versions use distinct keys and never meet.

        seed = expand("signing seed")
        public = (
            Ed25519PrivateKey.from_private_bytes(seed)
            .public_key()
            .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        )
        salts = tuple(
            b"gonet" + hashlib.blake2s(secrets.place + bytes([slot]), digest_size=16).digest()
            for slot in range(SLOTS)
        )
        return cls(seed, public, expand("record key 2"), salts)

    @property
    def libtorrent_private_key(self) -> bytes:
        """libtorrent's 64-byte form of the private key: SHA-512 of the seed, clamped."""
        expanded = bytearray(hashlib.sha512(self.seed).digest())
        expanded[0] &= 248
        expanded[31] &= 63
        expanded[31] |= 64
        return bytes(expanded)

    def __repr__(self) -> str:
        return "RoomKeys(...)"


def seal_record(keys: RoomKeys, slot: int, card: Card, published: float) -> bytes:
    plaintext = _PUBLISHED.pack(int(published)) + card.encode()
    nonce = os.urandom(_NONCE)
    value = nonce + ChaCha20Poly1305(keys.cipher_key).encrypt(nonce, plaintext, keys.salts[slot])
    if len(value) > MAX_VALUE:
        raise RecordError(f"record too large for the DHT: {len(value)} bytes")
    return value


def open_record(keys: RoomKeys, slot: int, value: bytes) -> Record:
    """The record in a slot's value; RecordError when it is not ours."""
    if len(value) < _NONCE + _PUBLISHED.size + 16:
        raise RecordError("too short")
    try:
        plaintext = ChaCha20Poly1305(keys.cipher_key).decrypt(
            value[:_NONCE], value[_NONCE:], keys.salts[slot]
        )
    except InvalidTag:
        raise RecordError("does not decrypt with this room's key") from None
    (published,) = _PUBLISHED.unpack_from(plaintext)
    try:
        return Record(decode_card(plaintext[_PUBLISHED.size :]), float(published))
    except CardError as exc:
        raise RecordError(f"not a card: {exc}") from None


def _settings(bootstrap: Sequence[tuple[str, int]]) -> lt.settings_pack:
    import libtorrent as lt

    settings: lt.settings_pack = {
        "enable_dht": True,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "alert_mask": lt.alert.category_t.dht_notification,
        "listen_interfaces": "0.0.0.0:0",
        # libtorrent's default, 8,000 bytes/s, is less than one read of the room (SLOTS
        # lookups) and one put (a 1 KB record to 8 nodes) send at once: what goes over it is
        # dropped, and the put waited out LOOKUP_TIMEOUT, storing nothing (joins took 10 s more).
        "dht_upload_rate_limit": 64_000,
    }
    if bootstrap:
        # Nodes of our own (a private DHT, maybe on loopback or a LAN): libtorrent's defences
        # of the public DHT against address clusters and busy addresses would reject them.
        settings["dht_bootstrap_nodes"] = ",".join(f"{h}:{p}" for h, p in bootstrap)
        settings["dht_restrict_routing_ips"] = False
        settings["dht_restrict_search_ips"] = False
        settings["dht_ignore_dark_internet"] = False
        settings["dht_enforce_node_id"] = False
        settings["dht_block_ratelimit"] = 1000
        settings["listen_interfaces"] = f"{local_address_toward(bootstrap[0])}:0"
    return settings


class DhtSession:
    """A libtorrent session's DHT as awaitable gets and puts (alerts polled on the loop)."""

    def __init__(self, bootstrap: Sequence[tuple[str, int]] = ()) -> None:
        import libtorrent as lt

        self._lt = lt
        self._session = lt.session(_settings(bootstrap))
        for node in bootstrap:
            self._session.add_dht_node(node)
        self._gets: dict[bytes, list[asyncio.Future[tuple[int, bytes]]]] = {}
        self._best: dict[bytes, tuple[int, bytes]] = {}
        self._puts: dict[bytes, list[asyncio.Future[int]]] = {}
        self._poller: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def _start(self) -> None:
        """Lookups issued before the bootstrap completed get lost: wait for it (bounded)."""
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll_alerts())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), LOOKUP_TIMEOUT)
        self._ready.set()

    async def _poll_alerts(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            for alert in self._session.pop_alerts():
                if isinstance(alert, self._lt.dht_bootstrap_alert):
                    log.debug("DHT bootstrap complete")
                    self._ready.set()
                elif isinstance(alert, self._lt.dht_mutable_item_alert):
                    self._got(bytes(alert.salt), alert)
                elif isinstance(alert, self._lt.dht_put_alert):
                    for future in self._puts.pop(bytes(alert.salt), []):
                        if not future.done():
                            future.set_result(int(alert.num_success))

    def _got(self, salt: bytes, alert: Any) -> None:
        item = alert.item
        if isinstance(item, bytes) and item:
            best = self._best.get(salt)
            if best is None or int(alert.seq) > best[0]:
                self._best[salt] = (int(alert.seq), item)
        if alert.authoritative:
            result = self._best.pop(salt, (0, b""))
            for future in self._gets.pop(salt, []):
                if not future.done():
                    future.set_result(result)

    async def get(self, public_key: bytes, salt: bytes) -> bytes:
        """The item's value (b"" when there is none)."""
        await self._start()
        future: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        waiting = self._gets.setdefault(salt, [])
        waiting.append(future)
        if len(waiting) == 1:
            self._session.dht_get_mutable_item(public_key, salt)
        try:
            return (await asyncio.wait_for(future, LOOKUP_TIMEOUT))[1]
        except TimeoutError:
            best = self._best.pop(salt, (0, b""))
            self._gets.pop(salt, None)
            return best[1]

    async def put(self, keys: RoomKeys, salt: bytes, value: bytes) -> int:
        """Store the value; on how many nodes it was stored."""
        await self._start()
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._puts.setdefault(salt, []).append(future)
        self._session.dht_put_mutable_item(
            keys.libtorrent_private_key, keys.public_key, value, salt
        )
        try:
            return await asyncio.wait_for(future, LOOKUP_TIMEOUT)
        except TimeoutError:
            return 0

    def detach(self) -> Any:
        """Stop listening, and hand over the libtorrent session, still a DHT node: one that
        joined other nodes' routing tables is best kept up while they run (gone, their lookups
        wait for it to time out)."""
        if self._poller is not None:
            self._poller.cancel()
        return self._session

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        await asyncio.to_thread(self._session.pause)
        del self._session


class DhtRendezvous:
    """Our record out, the other members' cards in, over the DHT."""

    def __init__(
        self,
        secrets: RoomSecrets,
        card: Card,
        *,
        bootstrap: Sequence[tuple[str, int]] = (),
    ) -> None:
        self._keys = RoomKeys.derive(secrets)
        self._card = card
        self._bootstrap = list(bootstrap)
        self._dht: DhtSession | None = None
        self._slot: int | None = None
        self._published = 0.0  # when our record was last published
        self._changed = asyncio.Event()  # our card changed: publish it
        self._stored = asyncio.Event()  # our record is in the DHT: we joined

    async def joined(self) -> None:
        """Return once our record is stored in the DHT."""
        await self._stored.wait()

    async def _session(self) -> DhtSession:
        if self._dht is None:
            nodes = [await asyncio.to_thread(resolve, h, p) for h, p in self._bootstrap]
            self._dht = DhtSession(nodes)
        return self._dht

    async def announce(self, card: Card) -> None:
        self._card = card
        self._changed.set()

    async def _read_all(self) -> list[Record | None]:
        dht = await self._session()
        values = await asyncio.gather(
            *(dht.get(self._keys.public_key, salt) for salt in self._keys.salts)
        )
        records: list[Record | None] = []
        for slot, value in enumerate(values):
            record = None
            if value:
                try:
                    record = open_record(self._keys, slot, value)
                except RecordError as exc:
                    log.info("Ignoring a DHT record", slot=slot, reason=str(exc))
            records.append(record)
        return records

    async def _publish(self, choice: SlotChoice, now: float) -> None:
        if choice.slot != self._slot:
            log.debug("Our DHT slot", slot=choice.slot, previous=self._slot)
        if choice.replaces is not None:
            log.info(
                "Replacing another member's DHT record",
                slot=choice.slot,
                member=choice.replaces.id,
            )
        self._slot = choice.slot
        dht = await self._session()
        value = seal_record(self._keys, choice.slot, self._card, now)
        stored = await dht.put(self._keys, self._keys.salts[choice.slot], value)
        self._published = now
        log.info("Published our DHT record", slot=choice.slot, nodes=stored)
        if stored:
            self._stored.set()

    def _holds_our_card(self, records: list[Record | None]) -> bool:
        record = records[self._slot] if self._slot is not None else None
        return record is not None and record.card == self._card

    async def members(self) -> AsyncIterator[Card]:
        """Cards of the members found (each card once while it stays in the slots; a member
        whose card changed is handed the new one); runs until cancelled. Several records may
        name one key (a member with the room's key can write any card): each is handed on
        once, not one after the other at every read, and the paths try them all. Our record
        is published from the same loop: one read of the slots serves both, and a refresh
        between two reads goes to the slot the last read left us."""
        seen: set[Card] = set()  # the live cards of the last read
        own = self._card.public_key
        schedule = PollSchedule(time.time())
        while True:
            records = await self._read_all()
            now = time.time()
            # Our record is new, moved, overwritten or out of date: the room is meeting (us).
            changed = self._changed.is_set() or not self._holds_our_card(records)
            if changed or now - self._published >= REFRESH:
                self._changed.clear()
                await self._publish(choose_slot(records, own, self._slot, now), now)
            live = [
                record.card
                for record in records
                if record is not None and record.live(now) and record.card.public_key != own
            ]
            fresh = [card for card in dict.fromkeys(live) if card not in seen]
            seen = set(live)
            for card in fresh:
                changed = True
                yield card
            schedule.read(time.time(), changed=changed)
            while (now := time.time()) < schedule.due:
                if now >= self._published + REFRESH:
                    await self._publish(choose_slot(records, own, self._slot, now), now)
                    continue
                with contextlib.suppress(TimeoutError):
                    wait = min(schedule.due, self._published + REFRESH) - now
                    await asyncio.wait_for(self._changed.wait(), wait)
                if self._changed.is_set():
                    schedule.hurry(time.time())

    async def close(self) -> None:
        if self._dht is not None:
            await self._dht.close()
            self._dht = None
