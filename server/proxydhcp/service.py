"""Start the proxyDHCP listener for `bootfleet serve` from the settings and the fleet."""

from __future__ import annotations

import ipaddress

from server.errors import StartupError
from server.fleet import Fleet
from server.netinfo import advertised_address, interface_of
from server.proxydhcp.listener import Endpoints, ProxyDhcp
from server.proxydhcp.policy import Policy, boot_files


def start_proxy_dhcp(fleet: Fleet) -> ProxyDhcp | None:
    """Listen on UDP 67 and 4011 of the advertised interface (when --proxy-dhcp is on); the
    counters join /metrics. StartupError (one line) if a port is taken or not permitted."""
    s = fleet.settings
    if not s.proxy_dhcp:
        return None
    address = advertised_address(s.bind, s.interface, s.advertise)
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        raise StartupError(
            f"proxyDHCP needs an IPv4 address to advertise, not {address!r} (--advertise)"
        ) from None
    device = s.interface or interface_of(address)
    if device is None:
        raise StartupError(
            f"proxyDHCP: no interface has the advertised address {address}; name one "
            "with --interface"
        )
    policy = Policy(
        boot_files(s.proxy_dhcp_files, fleet.server_url),
        s.proxy_dhcp_scope,
        fleet.booter.registry.lookup,
    )
    where = Endpoints(device=device, dhcp_port=s.proxy_dhcp_port, pxe_port=s.proxy_dhcp_pxe_port)
    proxy = ProxyDhcp(
        policy, address, where, discovery_control=s.proxy_dhcp_discovery_control
    ).start()
    fleet.metrics_sources.append(proxy.stats.render_prometheus)
    return proxy
