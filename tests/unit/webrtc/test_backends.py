"""Which WebRTC engine a peer uses, and the one info line that says which and why."""

from __future__ import annotations

import io
import json

import pytest

from weron import log as weron_log
from weron.webrtc import backends
from weron.webrtc.aiortc_backend import AiortcBackend

pytestmark = pytest.mark.usefixtures("restore_logging")

MISSING = "libdatachannel-py is not installed (its wheels need CPython 3.12+ on ...)"


@pytest.fixture
def logs() -> io.StringIO:
    stream = io.StringIO()
    weron_log.configure(5, stream)
    return stream


@pytest.fixture
def without_libdatachannel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "libdatachannel_problem", lambda: MISSING)


def engine_lines(logs: io.StringIO) -> list[dict[str, str]]:
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    return [line for line in lines if line["message"] == "WebRTC engine"]


@pytest.mark.usefixtures("without_libdatachannel")
def test_without_libdatachannel_aiortc_is_picked_and_the_reason_logged(
    logs: io.StringIO,
) -> None:
    assert isinstance(backends.load_backend(), AiortcBackend)
    assert backends.default_backend_name() == "aiortc"
    [line] = engine_lines(logs)
    assert (line["level"], line["engine"], line["reason"]) == ("info", "aiortc", MISSING)


@pytest.mark.usefixtures("without_libdatachannel")
def test_asking_for_a_missing_libdatachannel_is_one_line_saying_why() -> None:
    with pytest.raises(backends.BackendUnavailableError) as raised:
        backends.load_backend("libdatachannel")
    message = str(raised.value)
    assert "\n" not in message
    assert MISSING in message
    assert "--backend aiortc" in message


def test_an_engine_asked_for_by_name_says_so(logs: io.StringIO) -> None:
    assert isinstance(backends.load_backend("aiortc"), AiortcBackend)
    [line] = engine_lines(logs)
    assert line["engine"] == "aiortc"
    assert "--backend" in line["reason"]


def test_an_unknown_engine_names_the_known_ones() -> None:
    with pytest.raises(backends.BackendUnavailableError, match="libdatachannel, aiortc"):
        backends.load_backend("webkit")
