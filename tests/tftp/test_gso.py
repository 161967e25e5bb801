"""Windows go out as UDP GSO sends; where the route refuses GSO, one send per block."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from server.tftp import TftpService, transfer

from .helpers import download


@pytest.mark.parametrize("refused", [False, True])
def test_windowed_transfer_with_and_without_gso(
    refused: bool,
    service: TftpService,
    root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if refused:  # an option the kernel does not know: sendmsg fails as without GSO support
        monkeypatch.setattr(transfer, "UDP_SEGMENT", 0x7FFF)
    data = os.urandom(3 * 1024 * 1024 + 777)  # not a multiple of the window: a short tail
    (root / "win.bin").write_bytes(data)
    out = tmp_path / "out"
    done = download("atftp", service.port, "win.bin", out, blksize=1468, windowsize=16)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == data
