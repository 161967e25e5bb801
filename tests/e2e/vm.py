"""A QEMU client machine on the lab bridge: real firmware, network first then disk, serial log."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .lab import Lab, stop_process

Firmware = Literal["bios", "uefi"]

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS.fd")
# Secure Boot: Debian's SMM build, and a variable store with Microsoft's keys enrolled and
# Secure Boot switched on (so shim, signed by Microsoft's UEFI CA, is the first stage it takes).
OVMF_CODE_SB = Path("/usr/share/OVMF/OVMF_CODE_4M.ms.fd")
OVMF_VARS_SB = Path("/usr/share/OVMF/OVMF_VARS_4M.ms.fd")
# Debian's ipxe-qemu: one ROM with the legacy (SeaBIOS) and the UEFI iPXE driver for virtio-net.
NIC_ROM = Path("/usr/lib/ipxe/qemu/efi-virtio.rom")


def qemu_binary() -> str | None:
    return shutil.which("qemu-system-x86_64")


@dataclass
class VM:
    """One client machine. `power_on()` starts QEMU; the disk and (UEFI) NVRAM persist."""

    lab: Lab
    name: str
    mac: str
    firmware: Firmware
    disk: Path
    memory_mb: int = 512
    boots: int = 0
    proc: subprocess.Popen[bytes] | None = None
    tap: str | None = None
    logs: list[Path] = field(default_factory=list)
    # (kernel, initrd, cmdline): boot that directly (QEMU's fw_cfg loader), no firmware chain
    direct: tuple[Path, Path, str] | None = None
    # UEFI only: Secure Boot enforced (the *.ms.fd firmware and variables)
    secure_boot: bool = False
    # UEFI only: False switches OVMF's PXE client off, so its HTTP boot (arch 16) goes first
    pxe: bool = True

    @property
    def workdir(self) -> Path:
        return self.disk.parent

    @property
    def serial(self) -> Path:
        return self.logs[-1]

    @property
    def serial_socket(self) -> Path:
        return self.workdir / f"{self.name}.serial.sock"

    def type(self, text: str) -> None:
        """Send keystrokes to the serial console."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(self.serial_socket))
            sock.sendall(text.encode())
            time.sleep(0.2)

    def command(self, serial: Path) -> list[str]:
        assert self.tap is not None
        nic = ",".join(
            [
                # disable-legacy=on: Debian 12's iPXE ROMs carry PCI ID 1af4:1041 (modern-only
                # virtio-net); SeaBIOS runs no ROM on QEMU's default transitional 1af4:1000 NIC.
                "virtio-net-pci,disable-legacy=on,netdev=n0",
                f"mac={self.mac}",
                # UEFI: no iPXE ROM, so OVMF's own PXE client (VirtioNetDxe + PXE base code) takes
                # the first step, as a real UEFI machine's firmware would.
                f"romfile={NIC_ROM if self.firmware == 'bios' else ''}",
                "bootindex=1",  # network first, then the disk
            ]
        )
        # graphics=off: SeaBIOS talks on the serial port; smm=on: Secure Boot's variables are
        # writable only from SMM, so the guest OS cannot switch it off.
        machine = "q35,smm=on,graphics=off" if self.secure_boot else "q35,graphics=off"
        options = [
            ("-name", self.name),
            ("-accel", "tcg"),
            ("-machine", machine),
            ("-m", str(self.memory_mb)),
            ("-smp", "1"),
            ("-display", "none"),
            ("-vga", "none"),
            # The console goes to a file per boot; the same port answers on a socket, so a
            # person (or a test) can type at the installer: socat - UNIX:<name>.serial.sock
            (
                "-chardev",
                f"socket,id=ser0,path={self.serial_socket},server=on,wait=off,logfile={serial}",
            ),
            ("-serial", "chardev:ser0"),
            ("-netdev", f"tap,id=n0,ifname={self.tap},script=no,downscript=no"),
            ("-device", nic),
            ("-drive", f"file={self.disk},if=none,id=d0,format=raw"),
            ("-device", "virtio-blk-pci,drive=d0,bootindex=2"),
        ]
        if self.direct is not None:
            kernel, initrd, append = self.direct
            options += [("-kernel", str(kernel)), ("-initrd", str(initrd)), ("-append", append)]
        if self.firmware == "uefi":
            code, store = (
                (OVMF_CODE_SB, OVMF_VARS_SB) if self.secure_boot else (OVMF_CODE, OVMF_VARS)
            )
            vars_copy = self.workdir / f"{self.name}-{store.name}"
            if not vars_copy.exists():
                shutil.copyfile(store, vars_copy)
            options += [
                # No IPv6 PXE/HTTP boot: after the network loader exits (local boot), OVMF would
                # spend over a minute on DHCPv6 before it reaches the disk.
                ("-fw_cfg", "name=opt/org.tianocore/IPv6Support,string=no"),
                ("-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}"),
                ("-drive", f"if=pflash,format=raw,unit=1,file={vars_copy}"),
            ]
            if self.secure_boot:
                options.append(("-global", "driver=cfi.pflash01,property=secure,value=on"))
            if not self.pxe:
                options.append(("-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=no"))
        cmd = [qemu_binary() or "qemu-system-x86_64", "-nodefaults", "-no-user-config"]
        return cmd + [word for pair in options for word in pair]

    def power_on(self, direct: tuple[Path, Path, str] | None = None) -> VM:
        """Start the machine (again): a fresh serial log per boot, same disk and NVRAM."""
        self.direct = direct
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"{self.name} is already running")
        if self.tap is None:
            self.tap = self.lab.add_tap()
        self.boots += 1
        serial = self.workdir / f"{self.name}-boot{self.boots}.serial.log"
        serial.write_bytes(b"")
        self.logs.append(serial)
        self.proc = self.lab.popen(self.command(serial), self.workdir / f"{self.name}.qemu.log")
        return self

    def output(self) -> str:
        return self.serial.read_text(errors="replace") if self.logs else ""

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """Wait until `pattern` (a regex) shows on this boot's serial console."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.output())
            if m:
                return m
            if self.proc is not None and self.proc.poll() is not None:
                m = rx.search(self.output())
                if m:
                    return m
                raise AssertionError(
                    f"{self.name} powered off before {pattern!r}; serial:\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.name}: no {pattern!r} within {timeout}s; serial:\n{self.tail()}"
                )
            time.sleep(0.5)

    def wait_off(self, timeout: float) -> None:
        """Wait until the guest powers itself off (QEMU exits)."""
        assert self.proc is not None
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.name} still running after {timeout}s; serial:\n{self.tail()}"
            ) from None

    def power_off(self) -> None:
        stop_process(self.proc, grace=2)

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.output().splitlines()[-n:])

    def close(self) -> None:
        self.power_off()
        if self.tap is not None:
            self.lab.del_tap(self.tap)
            self.tap = None
