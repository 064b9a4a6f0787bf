"""zerolog-style JSON log lines, verbosity levels and URL redaction."""

from __future__ import annotations

import datetime
import io
import json
import logging

import pytest

from weron.log import WIRE_LOGGER, LogQuota, configure, get_logger, redact_url

log = get_logger("weron.tests.log")


pytestmark = pytest.mark.usefixtures("restore_logging")


def configured(verbosity: int) -> io.StringIO:
    stream = io.StringIO()
    configure(verbosity, stream=stream)
    return stream


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_one_json_line_per_record() -> None:
    stream = configured(7)
    log.info("Connected to client", community="c", clients=2, raddr=None)
    assert stream.getvalue().count("\n") == 1
    (line,) = lines(stream)
    assert list(line) == ["level", "community", "clients", "raddr", "time", "message"]
    assert line["level"] == "info"
    assert (line["community"], line["clients"], line["raddr"]) == ("c", 2, None)
    assert line["message"] == "Connected to client"
    assert isinstance(line["time"], str)
    assert datetime.datetime.fromisoformat(line["time"]).tzinfo is not None


def test_level_names_at_trace_verbosity() -> None:
    stream = configured(7)
    log.trace("t")
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    assert [(line["level"], line["message"]) for line in lines(stream)] == [
        ("trace", "t"),
        ("debug", "d"),
        ("info", "i"),
        ("warn", "w"),
        ("error", "e"),
    ]


def test_non_json_field_values_are_strings() -> None:
    stream = configured(5)
    log.info("odd", error=ValueError("bad"), text="é")
    (line,) = lines(stream)
    assert line["error"] == "bad"
    assert line["text"] == "é"
    assert "é" in stream.getvalue()  # UTF-8, not \\u escapes, like zerolog


def test_verbosity_zero_disables_logging() -> None:
    stream = configured(0)
    log.error("nothing")
    logging.getLogger("weron.tests").critical("nothing either")
    assert stream.getvalue() == ""
    assert not log.enabled(logging.CRITICAL)


def test_verbosity_three_keeps_errors_only() -> None:
    stream = configured(3)
    log.info("dropped")
    log.warning("dropped too")
    log.error("kept")
    assert [line["message"] for line in lines(stream)] == ["kept"]
    assert not log.enabled(logging.INFO)


def test_default_verbosity_is_info() -> None:
    stream = io.StringIO()
    configure(stream=stream)
    log.debug("dropped")
    log.info("kept")
    assert [line["message"] for line in lines(stream)] == ["kept"]


def test_reconfiguring_replaces_the_handler() -> None:
    first = configured(5)
    second = configured(5)
    log.info("once")
    assert first.getvalue() == ""
    assert len(lines(second)) == 1


def test_wire_logger_never_logs_debug() -> None:
    stream = configured(7)
    wire = logging.getLogger(WIRE_LOGGER)
    wire.debug("> GET /?community=c&password=secret HTTP/1.1")
    wire.info("connection open")
    assert [line["message"] for line in lines(stream)] == ["connection open"]
    stream = configured(6)
    logging.getLogger(WIRE_LOGGER).info("connection open")
    assert stream.getvalue() == ""


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://user:secret@db:5432/weron", "postgres://user:***@db:5432/weron"),
        ("redis://:secret@cache:6379/1", "redis://:***@cache:6379/1"),
        ("redis://user@cache:6379/1", "redis://user@cache:6379/1"),
        ("https://a:b:c@host/", "https://a:***@host/"),
        ("postgres://user:p@ss@db/weron", "postgres://user:***@db/weron"),
        (
            "wss://host/?community=c&password=p&key=k&token=t",
            "wss://host/?community=c&password=***&key=***&token=***",
        ),
        ("ws://host:1337/?Password=p&x=1", "ws://host:1337/?Password=***&x=1"),
        ("ws://host/?community=a+b&api_key=z#frag", "ws://host/?community=a+b&api_key=***#frag"),
        ("wss://weron.up.railway.app/", "wss://weron.up.railway.app/"),
        ("ws://[::1", "<invalid url>"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_url_keeps_other_params() -> None:
    redacted = redact_url("ws://u:pw@h/?community=c&password=hunter2&timeout=10s")
    assert "hunter2" not in redacted
    assert ":pw@" not in redacted
    assert "community=c" in redacted
    assert "timeout=10s" in redacted


def test_text_lines_read_time_level_message_and_fields() -> None:
    stream = io.StringIO()
    configure(6, stream=stream, log_format="text")
    log.info("Connected to signaler", id="abc", clients=2, ok=True, ids=["a"], reason="no route")
    log.debug("d")
    time, level, rest = stream.getvalue().splitlines()[0].split(" ", 2)
    assert datetime.datetime.fromisoformat(time).tzinfo is not None
    assert level == "INFO"
    assert rest == ' Connected to signaler id=abc clients=2 ok=true ids=["a"] reason="no route"'
    assert stream.getvalue().splitlines()[1].split(" ", 2)[1:] == ["DEBUG", "d"]


def test_text_lines_stay_one_line_and_escape_what_peers_send() -> None:
    stream = io.StringIO()
    configure(5, stream=stream, log_format="text")
    log.warning("Peer said\x1b[2J", name="evil\nINFO forged", empty="")
    log.error("failed", error=ValueError("a=b"))
    first, second = stream.getvalue().splitlines()
    assert first.endswith(' "Peer said\\u001b[2J" name="evil\\nINFO forged" empty=""')
    assert second.endswith(' ERROR failed error="a=b"')


def test_a_log_quota_writes_a_burst_per_period_and_counts_what_it_held_back() -> None:
    quota = LogQuota(burst=2, period=60.0, keys=2)
    assert [quota.take("a", 0.0) for _ in range(5)] == [0, 0, None, None, None]
    assert quota.take("b", 1.0) == 0  # each key its own
    assert quota.take("a", 59.0) is None
    assert quota.take("a", 60.0) == 4  # a new period, with the count of those held back
    assert quota.take("a", 61.0) == 0
    assert quota.take("c", 62.0) == 0  # a third key: "b"'s period is over, it is forgotten
    assert set(quota._windows) == {"a", "c"}
