"""Which browser origins may join: the signaler's own page, the allow-list, nothing else."""

from __future__ import annotations

import pytest

from weron.signaler.origins import OriginError, normalize_origin, origin_allowed


@pytest.mark.parametrize(
    ("given", "normal"),
    [
        ("https://a.example", "https://a.example"),
        ("https://A.Example:443", "https://a.example"),
        ("http://a.example:80/", "http://a.example"),
        ("http://a.example:8080", "http://a.example:8080"),
        ("http://[::1]:1337", "http://[::1]:1337"),
        (" * ", "*"),
    ],
)
def test_normalize_origin(given: str, normal: str) -> None:
    assert normalize_origin(given) == normal


@pytest.mark.parametrize(
    "bad",
    [
        "a.example",
        "ftp://a.example",
        "https://a.example/path",
        "https://a.example?q=1",
        "https://user@a.example",
        "https://a.example:99999",
        "null",
        "",
    ],
)
def test_normalize_origin_refuses(bad: str) -> None:
    with pytest.raises(OriginError, match="scheme://host"):
        normalize_origin(bad)


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("http://127.0.0.1:1337", "127.0.0.1:1337"),
        ("http://LOCALHOST:1337", "localhost:1337"),
        ("http://[::1]:1337", "[::1]:1337"),
        ("https://signaler.example", "signaler.example"),  # behind a TLS proxy
        ("http://signaler.example", "signaler.example:80"),
    ],
)
def test_own_origin_passes(origin: str, host: str) -> None:
    assert origin_allowed(origin, host, ())


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("http://127.0.0.1:1338", "127.0.0.1:1337"),
        ("http://evil.example", "signaler.example"),
        ("https://signaler.example", "signaler.example:1337"),
        ("http://signaler.example.evil.example", "signaler.example"),
        ("null", "signaler.example"),
        ("file://", "signaler.example"),
        ("http://signaler.example", None),
        ("http://signaler.example", "bad host:x"),
        ("", "signaler.example"),
    ],
)
def test_foreign_origin_is_refused(origin: str, host: str | None) -> None:
    assert not origin_allowed(origin, host, ())


def test_allow_list() -> None:
    allowed = (normalize_origin("https://a.example"), normalize_origin("http://b.example:8080"))
    assert origin_allowed("https://a.example", "signaler.example", allowed)
    assert origin_allowed("https://a.example:443", "signaler.example", allowed)
    assert origin_allowed("http://b.example:8080", "signaler.example", allowed)
    assert not origin_allowed("http://a.example", "signaler.example", allowed)
    assert not origin_allowed("http://b.example", "signaler.example", allowed)
    assert not origin_allowed("null", "signaler.example", allowed)


def test_any_origin() -> None:
    assert origin_allowed("null", None, ("*",))
    assert origin_allowed("https://whatever.example", "signaler.example", ("*",))
