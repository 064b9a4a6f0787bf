"""Signaling: the wire core (messages, envelope crypto; no I/O) and the signaler client."""
