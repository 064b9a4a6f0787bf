"""Strict parsing of the request target's query string, shared by joins and the management API."""

from __future__ import annotations

import urllib.parse
from typing import Final

MAX_QUERY_FIELDS: Final = 16


class QueryError(ValueError):
    """The query string cannot be read (bad percent-encoding, not UTF-8, too many fields)."""


def parse_query(target: str) -> dict[str, str]:
    """Query parameters of a request target; for repeated keys the first one wins, like Go's
    ``url.Values.Get``."""
    try:
        query = urllib.parse.urlsplit(target).query
        pairs = urllib.parse.parse_qsl(
            query, keep_blank_values=True, errors="strict", max_num_fields=MAX_QUERY_FIELDS
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise QueryError(f"malformed query string: {exc}") from None
    params: dict[str, str] = {}
    for key, value in pairs:
        params.setdefault(key, value)
    return params
