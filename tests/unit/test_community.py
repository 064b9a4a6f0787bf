"""The community document of the management API."""

from __future__ import annotations

import json

import pytest

from weron.community import Community


@pytest.mark.parametrize(
    "community",
    [Community("c", 0, True), Community("é 🦀", 12_345, False), Community("", -1, True)],
)
def test_round_trip(community: Community) -> None:
    assert Community.from_json(community.to_json()) == community
    assert Community.from_json(json.loads(json.dumps(community.to_json()))) == community


def test_to_json_shape() -> None:
    assert Community("c", 2, False).to_json() == {"id": "c", "clients": 2, "persistent": False}


def test_extra_fields_are_ignored() -> None:
    document = {"id": "c", "clients": 1, "persistent": True, "password": "x"}
    assert Community.from_json(document) == Community("c", 1, True)


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ([], "expected a community object, got list"),
        (None, "expected a community object, got NoneType"),
        ("c", "expected a community object, got str"),
        ({"clients": 1, "persistent": True}, "'id' must be a string"),
        ({"id": 1, "clients": 1, "persistent": True}, "'id' must be a string"),
        ({"id": "c", "persistent": True}, "'clients' must be an integer"),
        ({"id": "c", "clients": True, "persistent": True}, "'clients' must be an integer"),
        ({"id": "c", "clients": False, "persistent": True}, "'clients' must be an integer"),
        ({"id": "c", "clients": "1", "persistent": True}, "'clients' must be an integer"),
        ({"id": "c", "clients": 1.0, "persistent": True}, "'clients' must be an integer"),
        ({"id": "c", "clients": 1}, "'persistent' must be a boolean"),
        ({"id": "c", "clients": 1, "persistent": 1}, "'persistent' must be a boolean"),
        ({"id": "c", "clients": 1, "persistent": "true"}, "'persistent' must be a boolean"),
    ],
)
def test_from_json_rejects(document: object, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        Community.from_json(document)
