"""The sliding replay window on its own."""

from __future__ import annotations

from weron.wireguard.replay import REJECT_AFTER_MESSAGES, WINDOW_SIZE, ReplayWindow


def test_in_order_out_of_order_duplicates_and_too_old() -> None:
    window = ReplayWindow()
    assert all(window.mark(n) for n in (0, 1, 2, 5, 4))
    assert not window.mark(4) and not window.mark(0)
    assert window.mark(3)
    assert window.mark(5 + WINDOW_SIZE)
    assert not window.acceptable(5)  # exactly WINDOW_SIZE behind
    assert window.acceptable(6) and window.mark(6)
    assert not window.mark(6)


def test_big_jumps_and_the_message_limit() -> None:
    window = ReplayWindow()
    assert window.mark(10**12)
    assert not window.mark(0)
    assert window.mark(10**12 - 1)
    assert not window.acceptable(REJECT_AFTER_MESSAGES)
    assert not window.mark(REJECT_AFTER_MESSAGES)
    assert window.mark(REJECT_AFTER_MESSAGES - 1)
