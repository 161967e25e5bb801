"""Bootfleet's TFTP service alone, for when `bootfleet serve` cannot start it yet.

`python -m bench.ours_tftp DATA_DIR IMAGES_DIR PORT`: the same TftpService and dynamic
per-MAC configs (resolver + renderer of a Fleet on DATA_DIR) that serve wires, on loopback.
The caps are raised for the benchmark: all its clients share 127.0.0.1, where a real
classroom has one address per machine (dnsmasq gets --tftp-max=1024 likewise).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path

from server.config import Settings
from server.fleet import Fleet
from server.tftp.dynamic import make_dynamic
from server.tftp.server import TftpService


def main() -> None:
    data_dir, images, port = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    logging.basicConfig(level=logging.WARNING)
    fleet = Fleet.open(Settings(data_dir=data_dir, images_dir=images, advertise="127.0.0.1"))
    service = TftpService(
        images,
        make_dynamic(fleet.booter, fleet.renderer.render_boot),
        host="127.0.0.1",
        port=port,
        max_transfers=1024,
        per_source_max=1024,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    service.start()
    stop.wait()
    service.stop()


if __name__ == "__main__":
    main()
