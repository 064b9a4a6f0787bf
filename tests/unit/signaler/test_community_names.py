"""Community names: control characters are refused, everything else is accepted."""

from __future__ import annotations

import pytest

from weron.signaler.community_names import name_problem


@pytest.mark.parametrize("name", ["c", "my community", "ünïcödé", "日本", "a/b?c=d", "\u00a0nbsp"])
def test_accepted(name: str) -> None:
    assert name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("\x00", "U+0000"),
        ("a\x1b]0;x\x07", "U+001B"),
        ("a\r\nb", "U+000D"),
        ("\x7f", "U+007F"),
        ("x\x9b", "U+009B"),
        ("\t", "U+0009"),
    ],
)
def test_refused(name: str, code: str) -> None:
    problem = name_problem(name)
    assert problem is not None
    assert code in problem
