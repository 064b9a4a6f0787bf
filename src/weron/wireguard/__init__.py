"""WireGuard in Python: the protocol core (no I/O, ``now`` passed in), the packets carried inside
the tunnel, one asyncio UDP endpoint that carries every peer, and (``nat/``) the ways that
endpoint's socket gets through NATs."""
