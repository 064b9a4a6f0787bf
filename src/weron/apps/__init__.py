"""Applications on top of the peer adapters: chat (later: latency, throughput, vpn)."""
