"""Keys as WireGuard tools write them (base64 of the 32 raw bytes) and identity files."""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from weron.wireguard.crypto import KEY_SIZE, PrivateKey


class KeyFormatError(ValueError):
    """Text that is not a base64 WireGuard key, or an identity file we cannot use."""


def encode_key(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def decode_key(text: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except binascii.Error:
        raise KeyFormatError("not a base64 key") from None
    if len(raw) != KEY_SIZE:
        raise KeyFormatError(f"a key is {KEY_SIZE} bytes, this one has {len(raw)}")
    return raw


def load_or_create_identity(path: Path) -> PrivateKey:
    """The private key in ``path`` (``wg genkey`` format), or a new one written there with
    mode 0600 when the file does not exist yet."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return _create_identity(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFormatError(f"cannot read identity file {path}: {exc}") from None
    try:
        return PrivateKey(decode_key(text))
    except KeyFormatError as exc:
        raise KeyFormatError(f"identity file {path} does not hold a private key: {exc}") from None


def _create_identity(path: Path) -> PrivateKey:
    key = PrivateKey.generate()
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(encode_key(key.raw()) + "\n")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if not path.parent.is_dir():
            reason = f"the directory {path.parent} does not exist"
        raise KeyFormatError(f"cannot create identity file {path}: {reason}") from None
    return key
