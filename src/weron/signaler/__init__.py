"""The weron signaling server: communities, relay, management API.

signaler = Signaler(SignalerConfig(api_password="secret"))
await signaler.start("127.0.0.1", 1337)
...
await signaler.close()
"""

from weron.signaler.server import ConfigurationError, Signaler, StartError, parse_listen_address
from weron.signaler.services import SignalerConfig

__all__ = ["ConfigurationError", "Signaler", "SignalerConfig", "StartError", "parse_listen_address"]
