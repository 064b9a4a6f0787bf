"""`weron status`: a peer process's control socket, its protocol, and what it reports."""
