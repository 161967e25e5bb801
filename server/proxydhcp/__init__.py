"""ProxyDHCP (PXE 2.1): boot information for PXE clients beside a site's own DHCP server.

packet.py parses and builds BOOTP/DHCP messages, policy.py decides which boot file a client
gets (or no answer at all), listener.py runs the UDP sockets on ports 67 and 4011, stats.py
counts for /metrics. No address is ever offered: yiaddr is always 0.0.0.0.
"""
