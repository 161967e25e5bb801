"""Find the address Bootfleet advertises to clients (in URLs on kernel command lines)."""

from __future__ import annotations

import ipaddress

import netifaces

from server.errors import InvalidInput


def interface_address(name: str) -> str:
    """The first IPv4 address of interface `name`; a clear error if it has none."""
    if name not in netifaces.interfaces():
        raise InvalidInput("interface", f"no network interface named {name!r}")
    addrs = netifaces.ifaddresses(name).get(netifaces.AF_INET) or []
    if not addrs:
        raise InvalidInput("interface", f"interface {name!r} has no IPv4 address")
    return str(addrs[0]["addr"])


def default_route_interface() -> str | None:
    gateways = netifaces.gateways()
    default = gateways.get("default", {}).get(netifaces.AF_INET)
    return str(default[1]) if default else None


def advertised_address(bind: str, interface: str | None, advertise: str | None) -> str:
    """Explicit --advertise wins; then --interface; then a specific --bind address; then the
    interface of the default route; then loopback (a machine with no network at all)."""
    if advertise:
        return advertise
    if interface:
        return interface_address(interface)
    if bind not in {"0.0.0.0", "::", ""}:
        ipaddress.ip_address(bind)
        return bind
    name = default_route_interface()
    if name:
        try:
            return interface_address(name)
        except InvalidInput:
            pass
    return "127.0.0.1"


def url_host(address: str) -> str:
    """`address` as the host part of a URL (IPv6 in brackets)."""
    try:
        return f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    except ValueError:
        return address  # a DNS name


def interface_of(address: str) -> str | None:
    """The name of the interface holding IPv4 `address`, or None."""
    for name in netifaces.interfaces():
        for entry in netifaces.ifaddresses(name).get(netifaces.AF_INET) or []:
            if entry.get("addr") == address:
                return str(name)
    return None
