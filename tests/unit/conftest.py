"""Fixtures shared by the unit tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from weron.log import WIRE_LOGGER


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """``weron.log.configure`` changes process-wide loggers: put them back afterwards."""
    root, wire = logging.getLogger("weron"), logging.getLogger(WIRE_LOGGER)
    handlers, level, propagate, wire_level = (
        list(root.handlers),
        root.level,
        root.propagate,
        wire.level,
    )
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    root.propagate = propagate
    wire.setLevel(wire_level)
