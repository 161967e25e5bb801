"""The proxy's sockets on loopback, with the real registry behind the scope check: it answers
PXE clients only, without an address; hostile datagrams leave it up and answering."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from server.errors import StartupError
from server.fleet import Fleet
from server.proxydhcp.listener import Endpoints, ProxyDhcp
from server.proxydhcp.policy import Policy, boot_files

from .client import MAC, discover, header, option, options_of, pxe_options

SERVER_IP = "198.18.0.1"


@pytest.fixture
def client_sock() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(10)
        yield s


def start_proxy(fleet: Fleet, client_sock: socket.socket, scope: str = "all") -> ProxyDhcp:
    policy = Policy(boot_files("", fleet.server_url), scope, fleet.booter.registry.lookup)
    where = Endpoints(
        device=None, host="127.0.0.1", dhcp_port=0, pxe_port=0, offer_to=client_sock.getsockname()
    )
    return ProxyDhcp(policy, SERVER_IP, where).start()


@pytest.fixture
def proxy(fleet: Fleet, client_sock: socket.socket) -> Iterator[ProxyDhcp]:
    p = start_proxy(fleet, client_sock)
    yield p
    p.stop()


def ask(sock: socket.socket, port: int, data: bytes) -> dict[int, bytes] | None:
    """Send `data`; the options of the reply, or None when none came within a second."""
    sock.sendto(data, ("127.0.0.1", port))
    sock.settimeout(1)
    try:
        reply, _ = sock.recvfrom(4096)
    except TimeoutError:
        return None
    assert reply[16:20] == bytes(4), "a proxy reply must carry yiaddr 0.0.0.0"
    return options_of(reply)


def test_offer_on_67_and_ack_on_4011(proxy: ProxyDhcp, client_sock: socket.socket) -> None:
    dhcp, pxe = proxy.ports
    offer = ask(client_sock, dhcp, discover(arch=7))
    assert offer is not None and offer[53] == b"\x02" and offer[67] == b"snponly.efi"
    ack = ask(client_sock, pxe, discover(arch=7, msg_type=3))
    assert ack is not None and ack[53] == b"\x05" and ack[67] == b"snponly.efi"
    text = proxy.stats.render_prometheus()
    assert 'bootfleet_proxydhcp_answers_total{kind="offer",arch="efi64"} 1' in text
    assert 'bootfleet_proxydhcp_answers_total{kind="ack",arch="efi64"} 1' in text


def test_never_answers_a_non_pxe_client(proxy: ProxyDhcp, client_sock: socket.socket) -> None:
    plain = header() + option(53, b"\x01") + option(55, b"\x01\x03") + b"\xff"
    assert ask(client_sock, proxy.ports[0], plain) is None
    assert proxy.stats.ignored["not a PXE client"] == 1


def test_ignores_replies_and_requests_meant_for_the_site_server(
    proxy: ProxyDhcp, client_sock: socket.socket
) -> None:
    dhcp, pxe = proxy.ports
    other_reply = header(op=2) + option(53, b"\x02") + option(60, b"PXEClient") + b"\xff"
    assert ask(client_sock, dhcp, other_reply) is None
    assert ask(client_sock, dhcp, discover(msg_type=3)) is None  # REQUEST to the site's DHCP
    assert ask(client_sock, pxe, discover(msg_type=1)) is None
    assert proxy.stats.ignored["not a request"] == 1
    assert proxy.stats.ignored["other message type"] == 2


HOSTILE = {
    "empty": b"",
    "one byte": b"\x01",
    "truncated header": discover()[:200],
    "no cookie": discover()[:236] + b"XXXX" + discover()[240:],
    "no end option": discover()[:-1],
    "option length past the end": header() + b"\x35\xff\x01",
    "length byte missing": header() + option(53, b"\x01") + b"\x3c",
    "overload of nothing": header() + option(53, b"\x01") + option(52, b"\x03") + b"\xff",
    "overload value bad": header() + option(53, b"\x01") + option(52, b"\x09") + b"\xff",
    "overload twice": header() + option(52, b"\x01") * 2 + b"\xff",
    "message type empty": header() + option(53, b"") + option(60, b"PXEClient") + b"\xff",
    "message type long": header() + option(53, b"\x01\x01") + option(60, b"PXEClient") + b"\xff",
    "arch one byte": header()
    + option(53, b"\x01")
    + option(93, b"\x07")
    + option(60, b"PXEClient")
    + b"\xff",
    "vendor not ascii": header() + option(53, b"\x01") + option(60, b"PXEClient\xff\xfe") + b"\xff",
    "user class nested lengths": discover(user_class=b"\x09iPXE"),
    "hlen 16": header(hlen=16) + b"\xff",
    "all pads": header() + b"\0" * 1000,
    "huge": discover() + b"\0" * 60000,
    "token ring": header(htype=6) + option(53, b"\x01") + b"\xff",
    "random": bytes(range(256)) * 3,
    "broadcast MAC": discover(mac="ff:ff:ff:ff:ff:ff"),
    "zero MAC": discover(mac="00:00:00:00:00:00"),
}


# Odd but well-formed PXE requests: answered like any other (a one-byte arch is no arch: BIOS).
ODD_BUT_VALID = {"arch one byte", "vendor not ascii", "user class nested lengths"}


@pytest.mark.parametrize("port_index", [0, 1], ids=["port67", "port4011"])
def test_hostile_datagrams_leave_the_service_answering(
    proxy: ProxyDhcp, client_sock: socket.socket, port_index: int
) -> None:
    port = proxy.ports[port_index]
    for data in HOSTILE.values():
        client_sock.sendto(data, ("127.0.0.1", port))
    # Then a valid request (its own xid): its answer comes, after only the odd-but-valid ones.
    valid = header(xid=0x600D) + pxe_options(3 if port_index else 1, arch=0) + b"\xff"
    client_sock.sendto(valid, ("127.0.0.1", port))
    others = 0
    while True:
        reply, _ = client_sock.recvfrom(4096)  # settimeout(10): a dead service fails here
        if reply[4:8] == (0x600D).to_bytes(4, "big"):
            break
        others += 1
    assert options_of(reply)[67] == b"undionly.kpxe"
    answered = 0 if port_index else len(ODD_BUT_VALID)  # on 4011 they are DISCOVERs: dropped
    assert others == answered
    assert sum(proxy.stats.ignored.values()) == len(HOSTILE) - answered
    assert "internal error" not in proxy.stats.ignored


def test_scope_reinstall_reads_the_registry(
    fleet: Fleet,
    client_sock: socket.socket,
    registered: str,
    client: FlaskClient,
    auth: dict[str, str],
) -> None:
    proxy = start_proxy(fleet, client_sock, scope="reinstall")
    try:
        dhcp = proxy.ports[0]
        assert ask(client_sock, dhcp, discover(mac="52:54:00:99:99:99")) is None
        assert ask(client_sock, dhcp, discover(mac=registered)) is None  # idle
        r = client.post(f"/api/v1/clients/{registered}/reinstall", headers=auth)
        assert r.status_code in (200, 201, 202), r.text
        offer = ask(client_sock, dhcp, discover(mac=registered))
        assert offer is not None and offer[67] == b"snponly.efi"
        assert proxy.stats.unanswered == {"not registered": 1, "no reinstall in flight": 1}
    finally:
        proxy.stop()


def test_port_in_use_is_one_clear_line(fleet: Fleet, client_sock: socket.socket) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        policy = Policy({}, "all", fleet.booter.registry.lookup)
        proxy = ProxyDhcp(policy, SERVER_IP, Endpoints(None, "127.0.0.1", 0, port))
        with pytest.raises(StartupError, match=f"port {port} in use"):
            proxy.start()
        assert proxy.socks == []


def test_mac_from_chaddr_is_the_one_answered(proxy: ProxyDhcp, client_sock: socket.socket) -> None:
    client_sock.sendto(discover(), ("127.0.0.1", proxy.ports[0]))
    reply, _ = client_sock.recvfrom(4096)
    assert reply[28:34] == bytes.fromhex(MAC.replace(":", ""))


def test_offer_without_discovery_control(fleet: Fleet, client_sock: socket.socket) -> None:
    policy = Policy(boot_files("", fleet.server_url), "all", fleet.booter.registry.lookup)
    where = Endpoints(None, "127.0.0.1", 0, 0, client_sock.getsockname())
    proxy = ProxyDhcp(policy, SERVER_IP, where, discovery_control=False).start()
    try:
        offer = ask(client_sock, proxy.ports[0], discover(arch=7))
        assert offer is not None and 43 not in offer and offer[67] == b"snponly.efi"
    finally:
        proxy.stop()
