"""NAT traversal for gonet's WireGuard socket: STUN on that socket, RFC 5780 discovery (`gonet
nat`), hole punching with WireGuard messages as the probes, TURN relaying. Under ``wireguard/``
because nothing else traverses NATs with it: the WebRTC side has ICE for this (``weron utility
nat`` only runs gonet's discovery)."""
