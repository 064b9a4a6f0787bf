"""Shared test configuration: everything under tests/e2e is marked ``e2e``; the store
contract's fixtures are available to every store's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.store_contract"]

_E2E = Path(__file__).parent / "e2e"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _E2E in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)
