"""ICE candidate lines in session descriptions: what the backends keep and what they drop."""

from __future__ import annotations

from typing import Final

_CANDIDATE_LINES: Final = ("a=candidate:", "a=end-of-candidates")


def without_candidates(sdp: str) -> str:
    """``sdp`` without its candidates (nor the end-of-candidates mark): for a backend whose
    every candidate is trickled anyway, so the description carries none, as before."""
    return "".join(
        line for line in sdp.splitlines(keepends=True) if not line.startswith(_CANDIDATE_LINES)
    )
