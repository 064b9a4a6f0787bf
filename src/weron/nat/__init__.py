"""NAT traversal: STUN on the WireGuard socket, RFC 5780 discovery, hole punching, TURN."""
