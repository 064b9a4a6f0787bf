"""The control socket's protocol: one JSON request line, one JSON reply line (no I/O here).

See docs/status.md. A request is at most :data:`MAX_REQUEST` bytes; anything else gets an
error reply, so a confused or hostile client learns why and the process logs it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from weron.json_object import json_object
from weron.status.model import ProcessStatus, StatusFormatError, from_json, to_json

MAX_REQUEST: Final = 1024  # bytes, newline included
MAX_REPLY: Final = 16 << 20  # what a client reads at most: thousands of peers fit
VERSION: Final = 1
REQUESTS: Final = frozenset({"status"})


class RequestError(ValueError):
    """A request this protocol does not accept (the reason goes back to the client)."""


@dataclass(frozen=True, slots=True)
class Request:
    get: str


def parse_request(line: bytes) -> Request:
    """``{"get": "status"}``; :class:`RequestError` for anything else."""
    if len(line) > MAX_REQUEST:
        raise RequestError(f"request longer than {MAX_REQUEST} bytes")
    document = json_object(line, "request", RequestError)
    get = document.get("get")
    if not isinstance(get, str) or get not in REQUESTS:
        raise RequestError(f"unknown request: expected {{'get': one of {sorted(REQUESTS)}}}")
    return Request(get)


def request_line(get: str = "status") -> bytes:
    return json.dumps({"get": get}).encode() + b"\n"


def status_reply(status: ProcessStatus) -> bytes:
    return _line({"ok": True, "version": VERSION, "status": to_json(status)})


def error_reply(reason: str) -> bytes:
    return _line({"ok": False, "version": VERSION, "error": reason})


def _line(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode() + b"\n"


def parse_reply(line: bytes) -> ProcessStatus:
    """A reply to a status request; :class:`StatusFormatError` for an error reply or garbage."""
    document = json_object(line, "reply", StatusFormatError)
    if document.get("ok") is not True:
        error = document.get("error")
        raise StatusFormatError(f"the process refused: {str(error)[:200]}")
    return from_json(document.get("status"))
