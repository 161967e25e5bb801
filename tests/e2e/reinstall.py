"""One reinstall through a chosen DHCP chain, as the chains outside the matrix run it.

The matrix (test_matrix.py) spells the steps out per chain, with timings and the install's
id; the Secure Boot and HTTP Boot tests use this with their own machines and DHCP tags, then
`test_matrix.boot_disk` for the boot from disk.
"""

from __future__ import annotations

import time

from .bootfleet import Bootfleet
from .lab import Lab
from .test_matrix import (
    CMDLINE,
    INSTALLED_EVENTS,
    assert_lifecycle,
    boot_and_watch,
    event_kinds,
    marker,
)
from .vm import VM


def install_once(server: Bootfleet, lab: Lab, vm: VM, dhcp_tag: str | None) -> float:
    """Register `vm`, request a reinstall, power it on through `dhcp_tag`'s chain; the install
    must run pending -> ... -> installed and write the marker. Returns its seconds."""
    lab.choose_chain(vm.mac, dhcp_tag)
    server.register(vm.mac, server.profile("e2e", CMDLINE), hostname=vm.name)
    server.reinstall(vm.mac)
    started = time.monotonic()
    watch = boot_and_watch(server, vm, {"installed", "failed"})
    vm.wait_off(60)  # the installer powers the machine off
    seconds = time.monotonic() - started
    assert_lifecycle(watch, "installed", vm)
    assert event_kinds(server, vm.mac) == INSTALLED_EVENTS
    assert marker(vm).encode() in vm.disk.read_bytes()
    return seconds
