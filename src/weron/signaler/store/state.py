"""The in-memory store's state file (``--state``): what a restarted signaler needs to give
communities back to their members rather than to whoever joins first.

It holds the communities' verifiers and the key they are made with, so it is written as a
secret: mode 0600, to a temporary file first, then renamed over the old one (atomic), and its
content never reaches a log.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from weron.json_object import json_object

_VERSION: Final = 1


class StateFileError(Exception):
    """The state file cannot be read or written; the message says why, never what it holds."""


@dataclass(frozen=True, slots=True)
class SavedCommunity:
    id: str
    verifier: bytes
    persistent: bool


@dataclass(frozen=True, slots=True)
class State:
    secret: bytes
    communities: tuple[SavedCommunity, ...]


def encode_state(state: State) -> bytes:
    document = {
        "version": _VERSION,
        "secret": base64.b64encode(state.secret).decode("ascii"),
        "communities": [
            {
                "id": community.id,
                "verifier": base64.b64encode(community.verifier).decode("ascii"),
                "persistent": community.persistent,
            }
            for community in state.communities
        ],
    }
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


def _bytes(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise StateFileError(f"{what} is not a string")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise StateFileError(f"{what} is not base64") from None


def decode_state(data: bytes) -> State:
    """The state in ``data``; :class:`StateFileError` (naming no content) if it is not one."""
    document = json_object(data, "state file", StateFileError)
    if document.get("version") != _VERSION:
        raise StateFileError(f"not a version {_VERSION} weron signaler state")
    secret = _bytes(document.get("secret"), "the key")
    entries = document.get("communities")
    if len(secret) < 32 or not isinstance(entries, list):
        raise StateFileError("no key or no community list")
    communities = []
    for index, entry in enumerate(entries):
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("id"), str)
            and isinstance(entry.get("persistent"), bool)
        ):
            raise StateFileError(f"community {index} is malformed")
        verifier = _bytes(entry.get("verifier"), f"the verifier of community {index}")
        communities.append(SavedCommunity(entry["id"], verifier, entry["persistent"]))
    return State(secret, tuple(communities))


def read_state(path: Path) -> State | None:
    """The state saved in ``path``, ``None`` if there is no such file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return decode_state(data)
    except StateFileError as exc:
        raise StateFileError(f"{path} is corrupt: {exc}") from None


def write_state(path: Path, state: State) -> None:
    """Replace ``path`` with ``state`` atomically, readable by its owner only."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            os.fchmod(descriptor, 0o600)  # in case a stale temporary file had other modes
            file.write(encode_state(state))
            file.flush()
            os.fsync(descriptor)
        os.replace(temporary, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise StateFileError(f"cannot write {path}: {exc.strerror or exc}") from None
