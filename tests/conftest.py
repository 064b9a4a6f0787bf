"""Shared test configuration: everything under tests/e2e and tests/netlab is marked ``e2e``."""

from __future__ import annotations

from pathlib import Path

import pytest

_E2E = (Path(__file__).parent / "e2e", Path(__file__).parent / "netlab")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(folder in Path(str(item.fspath)).parents for folder in _E2E):
            item.add_marker(pytest.mark.e2e)
