"""`bootfleet serve`: every setting as a flag, then the service (server.service)."""

from __future__ import annotations

from typing import Any

import click

from server.cli.options import friendly, registry_options, settings_from


@click.command()
@registry_options
@click.option("--bind", help="Address to listen on (default 0.0.0.0).")
@click.option("--http-port", type=int, help="HTTP port (default 8080).")
@click.option("--http-threads", type=int, help="Threads answering HTTP requests (4).")
@click.option("--tftp-port", type=int, help="TFTP port (default 69 as root, else 6969).")
@click.option("--no-tftp", "tftp_enabled", flag_value=False, default=None, help="HTTP only.")
@click.option("--tftp-max-blksize", type=int, help="Largest TFTP block size granted (1468).")
@click.option("--tftp-max-transfers", type=int, help="Concurrent TFTP transfers (500).")
@click.option("--tftp-per-source", type=int, help="Concurrent TFTP transfers per address (64).")
@click.option("--tftp-max-timeout", type=int, help="Largest TFTP timeout option honoured (8).")
@click.option(
    "--tftp-max-transfer-seconds", type=int, help="A TFTP transfer ends after this (300)."
)
@click.option("--tftp-loops", type=int, help="Event-loop threads for TFTP transfers (1).")
@click.option("--tftp-workers", type=int, help="Threads per TFTP pool (0: 1 on SQLite, else 4).")
@click.option("--interface", help="Advertise this interface's IPv4 address to clients.")
@click.option("--advertise", help="Advertise exactly this address or host name.")
@click.option("--boot-timeout", type=int, help="Seconds without a boot-file fetch (1800).")
@click.option("--progress-timeout", type=int, help="Seconds without progress (7200).")
@click.option("--grace-seconds", type=int, help="Re-read window for installer configs (120).")
@click.option("--reap-interval", type=float, help="Seconds between deadline checks (30).")
@click.option("--wave-interval", type=float, help="Seconds between rounds of waves (5).")
@click.option(
    "--unknown-menu",
    "unknown_menu",
    flag_value=True,
    default=None,
    help="Offer unregistered iPXE machines a menu: disk (default) or request registration.",
)
@click.option("--discovered-max", type=int, help="Unregistered machines kept, newest (10000).")
@click.option("--events-per-mac", type=int, help="Events kept per MAC, newest (1000).")
@click.option("--event-days", type=int, help="Days an event is kept (365).")
@click.option("--db-busy-timeout", type=int, help="Milliseconds a SQLite write waits (5000).")
@click.option("--rate-limit", type=float, help="Boot/callback requests/s per source (10; 0 off).")
@click.option("--rate-burst", type=int, help="Burst of boot/callback requests per source (120).")
@click.option(
    "--proxy-dhcp",
    "proxy_dhcp",
    flag_value=True,
    default=None,
    help="Answer PXE clients' DHCP with boot information (no addresses) beside the site's DHCP.",
)
@click.option(
    "--proxy-dhcp-scope",
    type=click.Choice(["all", "registered", "reinstall"]),
    help="ProxyDHCP answers: all PXE clients, registered MACs, or in-flight reinstalls (all).",
)
@click.option(
    "--proxy-dhcp-files", help="Boot files per architecture: bios=pxelinux.0,efi64=grubnetx64.efi"
)
@click.option(
    "--proxy-dhcp-discovery-control/--no-proxy-dhcp-discovery-control",
    default=None,
    help="Option 43 'boot the offered file' in proxy offers (on).",
)
@click.option("--proxy-dhcp-port", type=int, help="ProxyDHCP DHCP port (67).")
@click.option("--proxy-dhcp-pxe-port", type=int, help="ProxyDHCP PXE request port (4011).")
@click.option(
    "--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False)
)
@friendly
def serve(**kwargs: Any) -> None:
    """Run HTTP, TFTP and the deadline reaper until SIGTERM or Ctrl-C."""
    from server import service

    names = tuple(
        k for k in kwargs if k not in {"data_dir", "database_url", "images_dir", "templates_dir"}
    )
    settings = settings_from(kwargs, names)
    service.configure_logging(settings.log_level)
    service.serve(settings)
