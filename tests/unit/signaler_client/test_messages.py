"""Signaling messages as the Go peers write them: JSON, ``[]byte`` payloads in padded base64."""

from __future__ import annotations

import pytest

from weron.signaler_client.messages import (
    Exchange,
    Introduction,
    MessageType,
    SignalingMessageError,
    decode_message,
    decode_session_description,
    encode_message,
    encode_session_description,
)

OFFER_SDP_B64 = "eyJ0eXBlIjoib2ZmZXIiLCJzZHAiOiJ2PTAifQ=="  # {"type":"offer","sdp":"v=0"}
CANDIDATE_JSON = (
    b'{"candidate":"candidate:1 1 udp 2130706431 192.0.2.1 5000 typ host",'
    b'"sdpMid":"0","sdpMLineIndex":0}'
)
CANDIDATE_B64 = (
    "eyJjYW5kaWRhdGUiOiJjYW5kaWRhdGU6MSAxIHVkcCAyMTMwNzA2NDMxIDE5Mi4wLjIuMSA1MDAwIHR5cCBob3N0Iiwi"
    "c2RwTWlkIjoiMCIsInNkcE1MaW5lSW5kZXgiOjB9"
)
EXCHANGE_TYPES = [MessageType.OFFER, MessageType.ANSWER, MessageType.CANDIDATE]


def test_introduction_encodes_like_go() -> None:
    assert encode_message(Introduction("a")) == b'{"type":"introduction","from":"a"}'


def test_introduction_round_trip() -> None:
    message = Introduction("peer-é-1")
    assert decode_message(encode_message(message)) == message


@pytest.mark.parametrize("kind", EXCHANGE_TYPES)
@pytest.mark.parametrize("payload", [b"", b"x", b"\x00\xff\xfe binary", CANDIDATE_JSON])
def test_exchange_round_trip(kind: MessageType, payload: bytes) -> None:
    message = Exchange(kind, "a", "b", payload)
    assert decode_message(encode_message(message)) == message


def test_exchange_encodes_like_go() -> None:
    message = Exchange(MessageType.OFFER, "a", "b", b'{"type":"offer","sdp":"v=0"}')
    expected = f'{{"type":"offer","from":"a","to":"b","payload":"{OFFER_SDP_B64}"}}'
    assert encode_message(message) == expected.encode()


def test_payload_uses_standard_padded_alphabet() -> None:
    encoded = encode_message(Exchange(MessageType.ANSWER, "a", "b", b"\xfb\xff\xfe" + b"ab"))
    assert b'"payload":"+//+YWI="' in encoded


def test_go_offer_fixture() -> None:
    data = f'{{"type":"offer","from":"a","to":"b","payload":"{OFFER_SDP_B64}"}}'.encode()
    message = decode_message(data)
    assert message == Exchange(MessageType.OFFER, "a", "b", b'{"type":"offer","sdp":"v=0"}')
    assert isinstance(message, Exchange)
    assert decode_session_description(message.payload) == (MessageType.OFFER, "v=0")


def test_go_candidate_fixture_with_spaces_and_extra_fields() -> None:
    data = (
        '{ "type": "candidate", "from": "b", "to": "a", "payload": "' + CANDIDATE_B64 + '", '
        '"extra": 1 }'
    ).encode()
    assert decode_message(data) == Exchange(MessageType.CANDIDATE, "b", "a", CANDIDATE_JSON)


def test_go_introduction_fixture() -> None:
    assert decode_message(b'{"type":"introduction","from":"x"}') == Introduction("x")


@pytest.mark.parametrize("payload", ['"payload":null,', ""])
def test_null_or_missing_payload_is_empty(payload: str) -> None:
    data = ('{"type":"answer",' + payload + '"from":"a","to":"b"}').encode()
    assert decode_message(data) == Exchange(MessageType.ANSWER, "a", "b", b"")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not json", "signaling message is not JSON"),
        (b"", "signaling message is not JSON"),
        (b'{"type":"introduction","from":"\xff"}', "signaling message is not JSON"),
        (b'["introduction","a"]', "signaling message is not a JSON object"),
        (b'"introduction"', "signaling message is not a JSON object"),
        (b'{"from":"a"}', "'type' must be a string"),
        (b'{"type":"hello","from":"a"}', "unknown message type"),
        (b'{"type":"Offer","from":"a","to":"b"}', "unknown message type"),
        (b'{"type":"introduction"}', "'from' must be a string"),
        (b'{"type":"introduction","from":1}', "'from' must be a string"),
        (b'{"type":"offer","from":"a"}', "'to' must be a string"),
        (b'{"type":"offer","from":"a","to":null}', "'to' must be a string"),
        (b'{"type":"offer","from":"a","to":["b"]}', "'to' must be a string"),
        (b'{"type":"offer","from":"a","to":"b","payload":"-__-"}', "not valid base64"),
        (b'{"type":"offer","from":"a","to":"b","payload":"YWI"}', "not valid base64"),
        (b'{"type":"offer","from":"a","to":"b","payload":"YW I="}', "not valid base64"),
        (b'{"type":"offer","from":"a","to":"b","payload":[1,2]}', "must be a base64 string"),
        (b'{"type":"offer","from":"a","to":"b","payload":12}', "must be a base64 string"),
    ],
)
def test_decode_rejects(data: bytes, reason: str) -> None:
    with pytest.raises(SignalingMessageError, match=reason):
        decode_message(data)


def test_exchange_cannot_be_an_introduction() -> None:
    with pytest.raises(SignalingMessageError):
        Exchange(MessageType.INTRODUCTION, "a", "b", b"")


@pytest.mark.parametrize("kind", [MessageType.OFFER, MessageType.ANSWER])
def test_session_description_round_trip(kind: MessageType) -> None:
    sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"
    encoded = encode_session_description(kind, sdp)
    assert encoded.startswith(b'{"type":"' + kind.value.encode() + b'","sdp":"v=0\\r\\n')
    assert decode_session_description(encoded) == (kind, sdp)


def test_session_description_encodes_like_go() -> None:
    encoded = encode_session_description(MessageType.ANSWER, "v=0")
    assert encoded == b'{"type":"answer","sdp":"v=0"}'


@pytest.mark.parametrize("kind", [MessageType.CANDIDATE, MessageType.INTRODUCTION])
def test_session_description_must_be_offer_or_answer(kind: MessageType) -> None:
    with pytest.raises(SignalingMessageError):
        encode_session_description(kind, "v=0")


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\xff",
        b"[]",
        b'{"sdp":"v=0"}',
        b'{"type":"candidate","sdp":"v=0"}',
        b'{"type":"pranswer","sdp":"v=0"}',
        b'{"type":"offer"}',
        b'{"type":"offer","sdp":0}',
    ],
)
def test_decode_session_description_rejects(payload: bytes) -> None:
    with pytest.raises(SignalingMessageError):
        decode_session_description(payload)
