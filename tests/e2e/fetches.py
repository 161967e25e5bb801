"""What one lab machine fetched from Bootfleet over TFTP, read back from the server's log.

`bootfleet serve --log-level info` logs one line per TFTP transfer:
`tftp <ip>:<port> <name>: ok, <bytes> bytes ...` (or `error 1 file not found`, ...). The
machine's address comes from dnsmasq's lease file (`<expiry> <mac> <ip> <host> <client-id>`).
"""

from __future__ import annotations

import re
from pathlib import Path

from .bootfleet import Bootfleet
from .lab import Lab


def lease_ip(lab: Lab, mac: str) -> str:
    """The address dnsmasq leased to `mac`."""
    leases = lab.workdir / "dnsmasq.leases"
    for line in leases.read_text().splitlines() if leases.exists() else []:
        fields = line.split()
        if len(fields) >= 3 and fields[1].lower() == mac.lower():
            return fields[2]
    raise AssertionError(f"no DHCP lease for {mac}:\n{lab.dnsmasq_log()[-3000:]}")


def tftp_fetches(log: str | Path, ip: str) -> list[tuple[str, str]]:
    """(name, outcome) of every TFTP request from `ip`, in order; outcome 'ok' or the error."""
    text = log.read_text(errors="replace") if isinstance(log, Path) else log
    rx = re.compile(rf"tftp {re.escape(ip)}:\d+ (\S+): (ok|[^,\n]+)")
    return [(m.group(1), m.group(2)) for m in rx.finditer(text)]


def fetched(server: Bootfleet, lab: Lab, mac: str) -> list[str]:
    """The names `mac` received over TFTP (successful transfers only), in order."""
    ip = lease_ip(lab, mac)
    return [name for name, outcome in tftp_fetches(server.log_text(), ip) if outcome == "ok"]
