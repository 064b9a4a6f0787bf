"""Network devices and packets for the VPNs: TUN/TAP devices configured over netlink, and the
pure parsing of IP and Ethernet headers that routes a packet to a peer."""
