"""Go-style flag values: durations, comma lists, environment variable names."""

from __future__ import annotations

import click
import pytest

from weron.cli.options import CommaList, Duration, env_name, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10s", 10.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("1.5h", 5400.0),
        ("250us", 250e-6),
        ("250µs", 250e-6),  # U+00B5 MICRO SIGN
        ("250μs", 250e-6),  # U+03BC GREEK SMALL LETTER MU, accepted by Go too
        ("100ns", 100e-9),
        ("0", 0.0),
        ("-0", 0.0),
        ("+0", 0.0),
        ("0s", 0.0),
        ("-1.5s", -1.5),
        ("+2m", 120.0),
        ("1h1m1s1ms", 3661.001),
        (".5s", 0.5),
        ("1.s", 1.0),
        ("2h45m", 9900.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["", " ", "-", "+", "10", "s", "1m30", "10x", "abc", "1e3s", "1..5s", ".s", "10 s"]
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("text", ["--5s", "+-5s", "-+5s", "++5s"])
def test_parse_duration_takes_one_sign_at_most(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (10.0, "10s"),
        (0.5, "500ms"),
        (90, "1m30s"),
        (0, "0s"),
        (60, "1m0s"),
        (1.5, "1.5s"),
        (3600, "1h0m0s"),
        (3661, "1h1m1s"),
        (0.00025, "250µs"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("flag", "name"),
    [
        ("--max-retries", "WERON_MAX_RETRIES"),
        ("--laddr", "WERON_LADDR"),
        ("verbose", "WERON_VERBOSE"),
        ("--api-password", "WERON_API_PASSWORD"),
    ],
)
def test_env_name(flag: str, name: str) -> None:
    assert env_name(flag) == name


def test_duration_param_type() -> None:
    duration = Duration()
    assert duration.convert("1m", None, None) == 60.0
    assert duration.convert(5, None, None) == 5.0
    with pytest.raises(click.BadParameter, match="invalid duration"):
        duration.convert("soon", None, None)


def test_comma_list_param_type() -> None:
    strings = CommaList()
    assert strings.convert("a, b,,c ", None, None) == ["a", "b", "c"]
    assert strings.convert("", None, None) == []
    assert strings.convert(("x", "y"), None, None) == ["x", "y"]
