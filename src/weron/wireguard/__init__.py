"""WireGuard in Python: the protocol core (no I/O, ``now`` passed in), the packets carried inside
the tunnel, and one asyncio UDP endpoint that carries every peer."""
