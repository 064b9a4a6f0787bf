"""Decoding a JSON object that came from elsewhere (a peer, a signaler, a client, a file).

Every wire format of ours starts the same way: bytes that must be a JSON object, else an error
of that format's own type. The reason names where the document broke, never its content: a
state file holds keys, and a peer's bytes are not ours to echo into logs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def json_object(data: bytes | str, what: str, error: Callable[[str], Exception]) -> dict[str, Any]:
    """``data`` parsed as a JSON object; else ``error("WHAT is not JSON (…)")`` or
    ``error("WHAT is not a JSON object (…)")`` is raised."""
    try:
        document = json.loads(data)
    except UnicodeDecodeError as exc:
        raise error(f"{what} is not JSON (not UTF-8 at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise error(f"{what} is not JSON ({exc.msg} at {where})") from None
    if not isinstance(document, dict):
        raise error(f"{what} is not a JSON object (a {type(document).__name__})")
    return document
