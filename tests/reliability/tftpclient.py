"""A minimal lock-step TFTP client for tests (RRQ, optional blksize, ACK every block)."""

from __future__ import annotations

import socket
import struct


def fetch(port: int, name: str, host: str = "127.0.0.1", blksize: int = 512) -> bytes:
    """Lock-step download on a fresh socket, acking every block."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(10)
        rrq = b"\0\1" + name.encode() + b"\0octet\0"
        if blksize != 512:
            rrq += b"blksize\0" + str(blksize).encode() + b"\0"
        s.sendto(rrq, (host, port))
        out, expected = bytearray(), 1
        while True:
            data, tid = s.recvfrom(70000)
            opcode, number = struct.unpack("!HH", data[:4])
            if opcode == 6:
                s.sendto(b"\0\4\0\0", tid)
                continue
            assert opcode == 3, data[:80]
            if number == expected & 0xFFFF:
                out += data[4:]
                expected += 1
            s.sendto(b"\0\4" + struct.pack("!H", number), tid)
            if len(data) - 4 < blksize and number == (expected - 1) & 0xFFFF:
                return bytes(out)
