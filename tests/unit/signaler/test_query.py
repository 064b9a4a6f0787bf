"""Strict query-string parsing of request targets."""

from __future__ import annotations

import pytest

from weron.signaler.query import MAX_QUERY_FIELDS, QueryError, parse_query


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/", {}),
        ("", {}),
        ("/?", {}),
        ("/?community=c&password=p", {"community": "c", "password": "p"}),
        ("?community=c", {"community": "c"}),
        ("/path/x?community=c", {"community": "c"}),
        ("/?community=a%20b&password=p%2Bq", {"community": "a b", "password": "p+q"}),
        ("/?community=a+b", {"community": "a b"}),
        ("/?community=%C3%A9t%C3%A9", {"community": "été"}),
        ("/?community=&password=", {"community": "", "password": ""}),
        ("/?flag", {"flag": ""}),
        ("/?community=c#fragment", {"community": "c"}),
        ("/?password=a=b", {"password": "a=b"}),
    ],
)
def test_parse(target: str, expected: dict[str, str]) -> None:
    assert parse_query(target) == expected


def test_first_repeated_key_wins() -> None:
    assert parse_query("/?community=first&community=second") == {"community": "first"}


def test_field_limit() -> None:
    fields = "&".join(f"k{i}=v" for i in range(MAX_QUERY_FIELDS))
    assert len(parse_query("/?" + fields)) == MAX_QUERY_FIELDS
    with pytest.raises(QueryError):
        parse_query(f"/?{fields}&one=more")


@pytest.mark.parametrize("target", ["/?community=%ff", "/?password=%C3", "/?%80=x"])
def test_percent_encoded_bytes_must_be_utf8(target: str) -> None:
    with pytest.raises(QueryError, match="malformed query string"):
        parse_query(target)


def test_query_error_is_a_value_error() -> None:
    assert issubclass(QueryError, ValueError)
