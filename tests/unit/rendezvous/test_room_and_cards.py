"""Room names, the secrets derived from them, and the cards members exchange."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from weron.rendezvous.card import Card, CardError, decode_card
from weron.rendezvous.room import Room, RoomError, derive, place_of
from weron.wireguard.crypto import PrivateKey
from weron.wireguard.keys import KeyFormatError, encode_key, load_or_create_identity
from weron.wireguard.nat.paths import Candidate, Kind


def test_room_names_parse_strictly() -> None:
    assert Room.parse("lobby/room/key/with/slashes") == Room("lobby", "room", "key/with/slashes")
    for bad in ("", "lobby", "lobby/room", "lobby//key", "/room/key", "lobby/room/", " / / "):
        with pytest.raises(RoomError):
            Room.parse(bad)
    assert "topsecretkey" not in repr(Room("l", "r", "topsecretkey"))


def test_secrets_are_separated_by_purpose_and_by_every_part() -> None:
    base = derive(Room("lobby", "room", "key"))
    assert base == derive(Room("lobby", "room", "key"))
    assert len(base.psk) == 32 and base.community.startswith("gonet-")
    values = [base.password, base.signaling_key, base.psk.hex()]
    assert len(set(values)) == 3
    other_key = derive(Room("lobby", "room", "other"))
    # Another key: same meeting place, nothing else in common.
    assert (other_key.community, other_key.password) == (base.community, base.password)
    assert other_key.signaling_key != base.signaling_key and other_key.psk != base.psk
    for other in (Room("lobby", "room2", "key"), Room("lobby2", "room", "key")):
        secrets = derive(other)
        assert secrets.community != base.community and secrets.psk != base.psk
    # Concatenation is unambiguous: "a/bc" and "ab/c" are different rooms.
    assert derive(Room("a", "bc", "k")).community != derive(Room("ab", "c", "k")).community
    assert base.signaling_key not in repr(base) and base.password not in repr(base)


def test_cards_round_trip_and_garbage_is_rejected() -> None:
    key = PrivateKey.generate().public
    card = Card(
        key,
        (
            Candidate(Kind.HOST, ("198.51.100.1", 51820)),
            Candidate(Kind.SRFLX, ("::1", 4000)),
            Candidate(Kind.RELAY, ("203.0.113.1", 49152)),
        ),
    )
    assert decode_card(card.encode()) == card
    for payload in (
        b"",
        b"[]",
        b"{}",
        b'{"publicKey": 1, "candidates": []}',
        b'{"publicKey": "AAAA", "candidates": []}',
        b'{"publicKey": "%s", "candidates": ["nope"]}' % card.id.encode(),
        b'{"publicKey": "%s", "candidates": ["host 1.2.3.4:70000"]}' % card.id.encode(),
        b'{"publicKey": "%s", "candidates": ["host example.org:53"]}' % card.id.encode(),
        b'{"publicKey": "%s", "candidates": ["bogus 1.2.3.4:5"]}' % card.id.encode(),
        b'{"publicKey": "%s", "candidates": [5]}' % card.id.encode(),
        b"\xff",
    ):
        with pytest.raises(CardError):
            decode_card(payload)
    rng = random.Random(1)
    for length in range(80):
        with pytest.raises(CardError):
            decode_card(rng.randbytes(length))


def test_identity_file_is_created_once_then_reused(tmp_path: Path) -> None:
    path = tmp_path / "identity"
    key = load_or_create_identity(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text().strip() == encode_key(key.raw())
    assert load_or_create_identity(path).public == key.public
    path.write_text("not a key")
    with pytest.raises(KeyFormatError, match="does not hold a private key"):
        load_or_create_identity(path)


def test_a_signed_card_is_proven_for_its_key_room_and_content_only() -> None:
    alice, mallory = PrivateKey.generate(), PrivateKey.generate()
    place, other_place = place_of(Room("l", "r", "k")), place_of(Room("l", "r2", "k"))
    candidates = (Candidate(Kind.HOST, ("198.51.100.1", 51820)), Candidate(Kind.SRFLX, ("::1", 9)))
    issued = 1_700_000_000_000
    card = Card(alice.public, candidates).signed(alice, place, issued)
    decoded = decode_card(card.encode())
    assert decoded == card and decoded.proven(place)
    assert not decoded.proven(other_place)  # replayed into another room
    assert not Card(alice.public, candidates).proven(place)  # unsigned: no proof
    forged = [
        Card(alice.public, candidates).signed(mallory, place, 1),  # another key signed it
        Card(alice.public, candidates[:1], card.issued, card.proof),  # candidates taken away
        Card(alice.public, candidates, issued + 1, card.proof),  # made later, it says
        Card(mallory.public, candidates, card.issued, card.proof),  # alice's proof, other key
    ]
    for other in forged:
        assert not decode_card(other.encode()).proven(place)
    # A member of an earlier version reads the card it always read.
    document = json.loads(card.encode())
    assert set(document) == {"publicKey", "candidates", "issued", "proof"}
    assert decode_card(json.dumps(document | {"extra": 1}).encode()).proven(place)


def test_a_malformed_proof_is_rejected() -> None:
    card = Card(PrivateKey.generate().public, ())
    base = {"publicKey": card.id, "candidates": []}
    for extra in (
        {"proof": "AAAA"},  # no issued
        {"proof": "AAAA", "issued": "1"},
        {"proof": "AAAA", "issued": -1},
        {"proof": "AAAA", "issued": 1 << 63},
        {"proof": "not base64!", "issued": 1},
        {"proof": 5, "issued": 1},
    ):
        with pytest.raises(CardError):
            decode_card(json.dumps(base | extra).encode())
    decoded = decode_card(json.dumps(base | {"proof": "AAAA", "issued": 1}).encode())
    assert not decoded.proven(b"")  # well-formed, wrong size: no proof
