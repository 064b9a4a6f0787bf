"""Network devices, packets and addresses: TUN/TAP devices configured over netlink for the
VPNs, the pure parsing of IP and Ethernet headers that routes a packet to a peer, and the UDP
endpoint types gonet's layers share."""
