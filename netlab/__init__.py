"""Network labs built of Linux network namespaces (docs/netlab.md#the-labs): the VPN lab
(:mod:`netlab.lab`), home routers with NATs (:mod:`netlab.natlab`), and stock wireguard-go
(:mod:`netlab.wglab`).

Outside ``tests/`` because the benchmarks build the same labs as the tests; outside
``src/weron`` because nothing of it ships."""
