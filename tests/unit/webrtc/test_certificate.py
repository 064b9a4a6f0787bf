"""The process's DTLS certificate: what libdatachannel expects, shared, renewed."""

from __future__ import annotations

import datetime
import subprocess
import sys

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


def test_a_program_ending_at_once_lets_the_maker_finish_first() -> None:
    """The maker thread is joined before the interpreter is torn down: one ended there inside
    cryptography's Rust code crashed the program (SIGSEGV) instead of letting it exit with its
    status. The hook runs after Python joins its threads, before the teardown."""
    script = """
import atexit, sys, threading
from weron.webrtc import certificate

def at_exit():
    makers = [t for t in threading.enumerate() if t.name == "DTLS certificate"]
    print("maker running" if makers else "maker done", certificate._of_day.cache_info().currsize)

atexit.register(at_exit)
certificate.prepare()
sys.exit(3)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout.strip()) == (3, "maker done 1"), result.stderr
