"""A member's side of a signaler (the server is :mod:`weron.signaler`): the envelope and
the messages (no I/O) and the client that carries them over a WebSocket."""
