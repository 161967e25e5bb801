"""Option negotiation (RFC 2347/2348/2349/7440) as a table."""

from __future__ import annotations

import pytest

from server.tftp.options import Negotiated, negotiate


def neg(**requested: str) -> Negotiated:
    return negotiate(requested, size=1000, max_blksize=1468, max_windowsize=64)


@pytest.mark.parametrize(
    ("requested", "blksize", "windowsize", "timeout", "oack"),
    [
        ({}, 512, 1, None, {}),
        ({"blksize": "1024"}, 1024, 1, None, {"blksize": "1024"}),
        ({"blksize": "8192"}, 1468, 1, None, {"blksize": "1468"}),
        ({"blksize": "65465"}, 1468, 1, None, {"blksize": "1468"}),
        ({"blksize": "8"}, 8, 1, None, {"blksize": "8"}),
        ({"blksize": "7"}, 512, 1, None, {}),
        ({"blksize": "0"}, 512, 1, None, {}),
        ({"blksize": "-5"}, 512, 1, None, {}),
        ({"blksize": "1e3"}, 512, 1, None, {}),
        ({"blksize": "9" * 30}, 512, 1, None, {}),
        ({"BLKSIZE": " 600 "}, 600, 1, None, {"BLKSIZE": "600"}),
        ({"tsize": "0"}, 512, 1, None, {"tsize": "1000"}),
        ({"tsize": "x"}, 512, 1, None, {}),
        ({"timeout": "1"}, 512, 1, 1, {"timeout": "1"}),
        ({"timeout": "8"}, 512, 1, 8, {"timeout": "8"}),
        ({"timeout": "9"}, 512, 1, None, {}),  # over max_timeout (8): left out, ours applies
        ({"timeout": "255"}, 512, 1, None, {}),
        ({"timeout": "0"}, 512, 1, None, {}),
        ({"timeout": "256"}, 512, 1, None, {}),
        ({"windowsize": "16"}, 512, 16, None, {"windowsize": "16"}),
        ({"windowsize": "65535"}, 512, 64, None, {"windowsize": "64"}),
        (
            {"windowsize": "64", "blksize": "1468"},
            1468,
            44,
            None,
            {"windowsize": "44", "blksize": "1468"},
        ),
        ({"windowsize": "0"}, 512, 1, None, {}),
        ({"multicast": ""}, 512, 1, None, {}),
        ({"blksize": "600", "Blksize": "700"}, 600, 1, None, {"blksize": "600"}),
    ],
)
def test_negotiate(
    requested: dict[str, str], blksize: int, windowsize: int, timeout: int | None, oack: object
) -> None:
    got = neg(**requested)
    assert (got.blksize, got.windowsize, got.timeout, got.oack) == (
        blksize,
        windowsize,
        timeout,
        oack,
    )


def test_tsize_left_out_for_empty_files() -> None:
    got = negotiate({"tsize": "0", "blksize": "512"}, size=0, max_blksize=1468, max_windowsize=1)
    assert got.oack == {"blksize": "512"}


@pytest.mark.parametrize(
    ("blksize", "windowsize", "expected"),
    [("1468", "64", "44"), ("8192", "64", "8"), ("65464", "64", "1"), ("512", "300", "64")],
)
def test_window_clamped_to_bytes(blksize: str, windowsize: str, expected: str) -> None:
    # windowsize before blksize in the request: the clamp still sees the final blksize
    got = negotiate(
        {"windowsize": windowsize, "blksize": blksize},
        size=10 << 20,
        max_blksize=65464,
        max_windowsize=64,
    )
    assert got.oack["windowsize"] == expected and got.windowsize == int(expected)
