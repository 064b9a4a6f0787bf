"""Where and how a peer app joins its community: the part every app config shares.

One frozen value the CLI builds once from the shared flags, so that mypy checks each app
config's construction (no keyword splat of a ``dict[str, Any]``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from weron.peers.adapter import AdapterConfig


@dataclass(frozen=True, slots=True)
class JoinConfig:
    """The signaler (``raddr``), the community and its credentials, and the adapter's
    settings. Apps that must add to ``adapter`` (a VPN's channel options, its overlay's
    networks) derive a copy with :func:`dataclasses.replace`: the caller's stays as it was."""

    raddr: str
    community: str
    password: str
    key: str
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
