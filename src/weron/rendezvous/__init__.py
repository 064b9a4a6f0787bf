"""Where gonet peers meet and exchange public keys and endpoints."""
