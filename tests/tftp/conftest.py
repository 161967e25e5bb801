"""Fixtures: a served root with test files, and TFTP services that always stop."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from server.tftp import TftpService

from .helpers import HOST, Raw, payload

SIZES = {"empty": 0, "511": 511, "512": 512}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    top = tmp_path / "images"
    top.mkdir()
    for name, size in SIZES.items():
        (top / f"f{name}.bin").write_bytes(payload(size))
    for blksize in (512, 1468, 8192):
        (top / f"x{blksize}.bin").write_bytes(payload(3 * blksize, seed=blksize))
    (top / "sub").mkdir()
    (top / "sub" / "undionly.kpxe").write_bytes(payload(70_000, seed=3))
    return top


@pytest.fixture
def big(root: Path) -> Path:
    """A 10 MiB file of random bytes in the root."""
    path = root / "big.bin"
    path.write_bytes(os.urandom(10 << 20))
    return path


ServiceFactory = Callable[..., TftpService]


@pytest.fixture
def make_service(root: Path) -> Iterator[ServiceFactory]:
    started: list[TftpService] = []

    def make(**kwargs: object) -> TftpService:
        kwargs.setdefault("host", HOST)
        kwargs.setdefault("timeout", 0.5)
        kwargs.setdefault("retries", 4)
        service = TftpService(kwargs.pop("root", root), port=0, **kwargs)  # type: ignore[arg-type]
        service.start()
        started.append(service)
        return service

    yield make
    for service in started:
        service.stop()


@pytest.fixture
def service(make_service: ServiceFactory) -> TftpService:
    return make_service(max_blksize=8192)


@pytest.fixture
def raw(service: TftpService) -> Iterator[Raw]:
    client = Raw(service.port)
    yield client
    client.close()
