"""The process's DTLS certificate: what libdatachannel expects, shared, renewed."""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from weron.webrtc import certificate

NOW = datetime.datetime(2026, 11, 29, 23, 0, tzinfo=datetime.UTC)


def test_a_self_signed_p256_certificate_valid_now() -> None:
    made = certificate.generate(NOW)
    parsed = x509.load_pem_x509_certificate(made.certificate_pem.encode())
    key = serialization.load_pem_private_key(made.key_pem.encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert isinstance(key.curve, ec.SECP256R1)
    assert parsed.public_key() == key.public_key()
    assert parsed.issuer == parsed.subject
    assert parsed.not_valid_before_utc < NOW < parsed.not_valid_after_utc


def test_shared_for_a_day_then_renewed() -> None:
    first = certificate.current(NOW)
    assert certificate.current(NOW - datetime.timedelta(hours=22)) is first
    renewed = certificate.current(NOW + datetime.timedelta(hours=1))  # the next day
    assert renewed is not first
    assert renewed.key_pem != first.key_pem
