"""OVMF's own PXE client fetches a boot program of several MiB through a lossy link.

EDK2's TFTP client asks for `windowsize` (RFC 7440). Through the lab's lossy relay (loss,
duplication, reordering, one seed) the same firmware fetches the same file from Bootfleet
and, in the same run, from tftp-hpa (which answers lock-step). Recorded per server: the
options OVMF sent, what the server agreed, the DATA datagrams the server sent per block
needed, the retransmissions and the seconds from request to the ACK of the last block.
Asserted: both fetches complete and Bootfleet's traffic stays within a fixed multiple of
the file (a count, not a time). Figures go to tests/artifacts/e2e/windowsize.json.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .bootfleet import Bootfleet
from .conftest import Machines
from .lab import SERVER_IP, Lab, stop_process
from .relay import Impairment, LossyRelay, Session

pytestmark = pytest.mark.e2e

BOOTFLEET_RELAY = "198.18.0.3"
HPA_RELAY = "198.18.0.4"
HPA_IP = "198.18.0.5"
FILE = "windowed.efi"
SIZE = 3 << 20
IMPAIRMENT = Impairment(loss=0.02, duplicate=0.02, reorder=0.05, delay=0.004, seed=7440)
FETCH_TIMEOUT = 480  # tcg, shared cores, and each lost window end costs a 1 s timeout
# DATA datagrams the server may send per block needed: OVMF's window (4 blocks). Bootfleet's
# own cap (server.tftp.transfer.MAX_SEND_FACTOR) ends a transfer at 8; tftp-hpa (lock-step)
# sends ~1.04 here, Bootfleet ~2.9 (docs/tftp.md: every block OVMF receives out of order
# costs a resent window).
MAX_RATIO = 4.0
LOADER = Path("/usr/lib/ipxe/snponly.efi")


def boot_program(dest: Path) -> None:
    """A real EFI program (iPXE's snponly.efi) padded to SIZE: PXE loads the whole file."""
    head = LOADER.read_bytes()
    pad = bytes((i * 7 + 3) & 0xFF for i in range(251))
    body = head + pad * ((SIZE - len(head)) // len(pad) + 1)
    dest.write_bytes(body[:SIZE])


@pytest.fixture
def tftp_hpa(lab: Lab, tmp_path: Path) -> Iterator[None]:
    root = tmp_path / "hpa-root"
    root.mkdir()
    boot_program(root / FILE)
    lab.add_address(HPA_IP)
    proc = lab.popen(
        ["in.tftpd", "-L", "-u", "root", "-a", f"{HPA_IP}:69", "-s", str(root)],
        tmp_path / "in.tftpd.log",
    )
    time.sleep(0.3)
    assert proc.poll() is None, (tmp_path / "in.tftpd.log").read_text()
    try:
        yield
    finally:
        stop_process(proc)


def figures(session: Session, relay: LossyRelay) -> dict[str, object]:
    needed = len(session.blocks)
    return {
        "options sent by OVMF": session.options,
        "earlier requests' options (PXE's size probe)": [
            s.options for s in relay.sessions if s is not session and s.filename == FILE
        ],
        "size": session.size,
        "blocks needed": needed,
        "DATA datagrams sent by the server": session.data_packets,
        "DATA datagrams per block needed": round(session.data_packets / needed, 3),
        "DATA bytes sent per byte delivered": round(session.data_bytes / session.size, 3),
        "retransmitted DATA datagrams": session.resent,
        "server datagrams by kind": dict(session.from_server),
        "seconds, request to ACK of the last block": round(
            (session.done or time.monotonic()) - session.requested, 1
        ),
        "complete": session.done is not None,
        "client errors": [e.decode("latin-1") for e in session.client_errors],
        "relay decisions (whole boot)": dict(relay.counts),
    }


def fetch_through(
    lab: Lab, machines: Machines, name: str, relay_ip: str, upstream: str
) -> dict[str, object]:
    """Boot a fresh UEFI VM whose DHCP answer names `relay_ip` as TFTP server and FILE as
    boot file; wait until the relay saw the last block ACKed; return the figures."""
    lab.add_address(relay_ip)
    relay = LossyRelay(lab.netns.name, relay_ip, (upstream, 69), IMPAIRMENT).start()
    vm = machines.new("uefi", f"window-{name}")
    tag = f"window{name}"
    line = f"dhcp-boot=tag:{tag},tag:efi64,tag:!ipxe,{FILE},,{relay_ip}"
    lab.extra_dhcp.append(line)
    try:
        lab.choose_chain(vm.mac, tag)
        vm.power_on()
        deadline = time.monotonic() + FETCH_TIMEOUT
        while True:
            session = relay.transfer(FILE)
            if session is not None and session.done is not None:
                break
            assert vm.proc is not None and vm.proc.poll() is None, vm.tail()
            assert time.monotonic() < deadline, (
                f"{name}: no complete fetch within {FETCH_TIMEOUT}s; "
                f"{figures(session, relay) if session else 'no request'}; serial:\n{vm.tail()}"
            )
            time.sleep(0.5)
        return figures(session, relay)
    finally:
        vm.power_off()
        relay.close()
        lab.extra_dhcp.remove(line)
        lab.choose_chain(vm.mac, None)


def test_ovmf_windowed_fetch_under_loss_bootfleet_and_tftp_hpa(
    lab: Lab, bootfleet: Bootfleet, tftp_hpa: None, machines: Machines, artifacts: Path
) -> None:
    boot_program(bootfleet.images_dir / FILE)
    results = {
        "impairment": vars(IMPAIRMENT),
        "bootfleet": fetch_through(lab, machines, "bf", BOOTFLEET_RELAY, SERVER_IP),
        "tftp-hpa": fetch_through(lab, machines, "hpa", HPA_RELAY, HPA_IP),
    }
    (artifacts / "windowsize.json").write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))
    ours = results["bootfleet"]
    assert isinstance(ours, dict)
    options = ours["options sent by OVMF"]
    assert isinstance(options, dict) and "windowsize" in options, options
    assert ours["size"] == SIZE
    assert ours["DATA datagrams per block needed"] <= MAX_RATIO, ours  # type: ignore[operator]
    assert results["tftp-hpa"]["size"] == SIZE  # type: ignore[index]
