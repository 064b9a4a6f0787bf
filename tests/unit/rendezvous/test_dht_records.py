"""DHT records of a room: only the room key reads or writes them, slots are not swappable."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from weron.rendezvous.card import Card
from weron.rendezvous.dht import RecordError, RoomKeys, open_record, seal_record
from weron.rendezvous.room import Room, derive
from weron.rendezvous.slots import SLOTS, Record, preferred_slot
from weron.wireguard.crypto import PrivateKey
from weron.wireguard.nat.paths import Candidate, Kind


@pytest.fixture(scope="module")
def keys() -> RoomKeys:
    return RoomKeys.derive(derive(Room("lobby", "room", "secret")))


def test_records_open_only_with_the_room_key_and_in_their_own_slot(keys: RoomKeys) -> None:
    card = Card(PrivateKey.generate().public, (Candidate(Kind.SRFLX, ("198.51.100.2", 4000)),))
    value = seal_record(keys, 3, card, 1_900_000_000)
    assert open_record(keys, 3, value) == Record(card, 1_900_000_000)
    with pytest.raises(RecordError):
        open_record(keys, 4, value)  # moved to another slot
    stranger = RoomKeys.derive(derive(Room("lobby", "room", "another key")))
    assert stranger.public_key != keys.public_key  # other items altogether
    assert stranger.salts == keys.salts  # salts come from the room name only
    with pytest.raises(RecordError):
        open_record(stranger, 3, value)
    tampered = bytearray(value)
    tampered[-1] ^= 1
    for bad in (bytes(tampered), value[:20], b"", b"x" * 200):
        with pytest.raises(RecordError):
            open_record(keys, 3, bad)
    assert 0 <= preferred_slot(card.public_key) < SLOTS == len(keys.salts)
    assert "secret" not in repr(keys)


def test_the_libtorrent_key_form_is_the_clamped_seed_hash(keys: RoomKeys) -> None:
    expanded = keys.libtorrent_private_key
    assert len(expanded) == 64 and expanded[0] & 7 == 0 and expanded[31] & 0xC0 == 0x40
    public = Ed25519PrivateKey.from_private_bytes(keys.seed).public_key().public_bytes_raw()
    assert public == keys.public_key
