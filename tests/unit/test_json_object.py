import pytest

from weron.json_object import json_object


class FormatError(ValueError):
    pass


def test_an_object_is_returned() -> None:
    assert json_object(b'{"a": [1]}', "card", FormatError) == {"a": [1]}
    assert json_object('{"a": 1}', "card", FormatError) == {"a": 1}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", r"^card is not JSON \(Expecting value at line 1, column 1\)$"),
        (b'{"a":\n tru}', r"^card is not JSON \(Expecting value at line 2, column 2\)$"),
        (b'{"key":"\xff secret"}', r"^card is not JSON \(not UTF-8 at byte 8\)$"),
        (b"[1, 2]", r"^card is not a JSON object \(a list\)$"),
        (b'"text"', r"^card is not a JSON object \(a str\)$"),
        (b"null", r"^card is not a JSON object \(a NoneType\)$"),
    ],
)
def test_anything_else_is_the_formats_own_error_naming_no_content(data: bytes, reason: str) -> None:
    with pytest.raises(FormatError, match=reason) as caught:
        json_object(data, "card", FormatError)
    assert "secret" not in str(caught.value)
