"""TFTP service: static boot loaders from the images root, boot configs rendered on request."""

from server.tftp.dynamic import make_dynamic
from server.tftp.server import TftpService
from server.tftp.stats import TftpStats

__all__ = ["TftpService", "TftpStats", "make_dynamic"]
