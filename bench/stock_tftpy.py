"""Stock tftpy as a reference server: `python -m bench.stock_tftpy ROOT PORT` (logging off)."""

from __future__ import annotations

import logging
import sys

import tftpy


def main() -> None:
    root, port = sys.argv[1], int(sys.argv[2])
    logging.disable(logging.CRITICAL)
    tftpy.TftpServer(root).listen("127.0.0.1", port)


if __name__ == "__main__":
    main()
