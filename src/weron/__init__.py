"""weron: overlay networks based on WebRTC."""

__version__ = "0.1.0"
