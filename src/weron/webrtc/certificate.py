"""The DTLS certificate that all of a process's libdatachannel connections share.

Left to itself, libdatachannel makes one per connection on its worker threads, and setting the
first local description waits for it there: with the GIL held (see
``weron.webrtc.libdatachannel_backend``). Given as PEM text, the library parses it in the
connection's constructor instead and never waits. Sharing one certificate is what WebRTC allows
(``RTCCertificate`` is made to be reused): a peer only checks that the fingerprint in our session
description, which the signaling carries, matches the certificate of the DTLS handshake; each
handshake still agrees on fresh keys. The key is an ECDSA P-256 one, as libdatachannel makes.
"""

from __future__ import annotations

import datetime
import functools
import threading
from dataclasses import dataclass
from typing import Final

_VALID: Final = datetime.timedelta(days=30)
_SLACK: Final = datetime.timedelta(days=1)  # valid from a day back: peers' clocks differ


@dataclass(frozen=True, slots=True)
class Certificate:
    certificate_pem: str
    key_pem: str


def generate(now: datetime.datetime) -> Certificate:
    """A new self-signed certificate and its key, valid from a day before ``now``."""
    # Imported here, in prepare()'s thread: x509 alone takes some 40 ms of start-up.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weron")])
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _SLACK)
        .not_valid_after(now + _VALID)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return Certificate(
        certificate.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()
    )


_lock = threading.Lock()  # one maker at a time: a second caller waits for the first's


def current(now: datetime.datetime | None = None) -> Certificate:
    """The process's certificate: made on first use, a new one each day (UTC) for the
    connections made that day, long before the last one expires."""
    with _lock:
        return _of_day((now or datetime.datetime.now(datetime.UTC)).date())


def prepare() -> None:
    """Make today's certificate in a thread (some 50 ms), while the program starts up and
    connects to its signaler: the first connection then finds it made.

    Not a daemon thread: Python joins it before it tears the interpreter down. A daemon one
    still signing when a program ended early (a deleted VPN device, a refused password) was
    ended inside cryptography's Rust code, whose clean-up then freed Python memory with no
    interpreter left: a segmentation fault instead of the program's status."""
    threading.Thread(target=current, name="DTLS certificate").start()


@functools.lru_cache(maxsize=1)
def _of_day(day: datetime.date) -> Certificate:
    return generate(datetime.datetime.combine(day, datetime.time(), datetime.UTC))
