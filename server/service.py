"""`bootfleet serve`: HTTP (waitress), TFTP and the deadline reaper in one process."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

import click
import waitress
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, MultiSocketServer

from server.app import MAX_BODY, create_app
from server.backup import serving_lock
from server.conductor import Conductor
from server.config import Settings
from server.errors import BootfleetError, StartupError
from server.fleet import Fleet
from server.proxydhcp.service import start_proxy_dhcp
from server.reaper import Reaper
from server.tftp.dynamic import make_dynamic
from server.tftp.server import TftpService
from server.webhooks import Courier

log = logging.getLogger(__name__)


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Per-packet chatter costs throughput; keep tftpy at WARNING.
    logging.getLogger("tftpy").setLevel(logging.WARNING)
    # waitress warns "Task queue depth is N" for every request that finds all HTTP threads
    # busy: in a boot storm that is every request, a log line each, and ~7 % of /ipxe's CPU
    # (py-spy --gil under bench's /ipxe load). Queueing is how a burst is absorbed.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)


def serve(settings: Settings) -> None:
    # A shared lock on <data_dir>/serve.lock, with our PID: `db restore` refuses while held.
    with serving_lock(settings.data_dir):
        _serve(settings)


def _serve(settings: Settings) -> None:
    fleet = Fleet.open(settings)
    settings.images.mkdir(parents=True, exist_ok=True)
    app = create_app(fleet=fleet)
    try:
        http: BaseWSGIServer | MultiSocketServer = waitress.create_server(
            app,
            host=settings.bind,
            port=settings.http_port,
            threads=settings.http_threads,
            ident="bootfleet",
            clear_untrusted_proxy_headers=True,
            # Flask's 413 (MAX_CONTENT_LENGTH) comes only once waitress has buffered the whole
            # body, to a temporary file, up to its 1 GiB default: refuse a longer one as soon
            # as its Content-Length is read. Waitress refuses at the limit itself, hence + 1.
            max_request_body_size=int(app.config["MAX_CONTENT_LENGTH"] or MAX_BODY) + 1,
        )
    except OSError as exc:
        raise StartupError(
            f"cannot listen for HTTP on {settings.bind}:{settings.http_port}: {exc.strerror}"
        ) from None
    bound_send_chunks(http)
    try:
        tftp = start_tftp(fleet)
    except StartupError:
        http.close()
        raise
    try:
        proxy = start_proxy_dhcp(fleet)
    except BootfleetError:  # a port taken, or a bad --proxy-dhcp-files
        http.close()
        if tftp is not None:
            tftp.stop()
        raise
    reaper = Reaper(fleet.engine, settings.reap_interval, fleet.retention)
    reaper.start()
    courier = Courier(fleet.engine, fleet.server_url)
    courier.start()
    conductor = Conductor(
        fleet.engine, fleet.policy, fleet.checks, fleet.waker, settings.wave_interval
    )
    conductor.start()

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: shutting down", signal.Signals(signum).name)
        stop.set()
        http.close()
        hang_up_idle(http)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    announce(fleet, tftp_port=tftp.port if tftp else None)
    if proxy is not None:
        dhcp_port, pxe_port = proxy.ports
        click.echo(
            f"  proxyDHCP ports {dhcp_port}+{pxe_port} on {proxy.where.device}: "
            f"answering {fleet.settings.proxy_dhcp_scope} PXE clients, no addresses"
        )
    try:
        http.run()
    except OSError:
        if not stop.is_set():
            raise
    finally:
        if tftp is not None:
            tftp.stop()
        if proxy is not None:
            proxy.stop()
        reaper.stop()
        courier.stop()
        conductor.stop()
        fleet.close()
        log.info("stopped")


# Waitress reads a file response (an image) in chunks of the socket's send-buffer size,
# which Linux reports as 4 MiB on loopback and fast links: each chunk a fresh 4 MiB bytes
# object, above malloc's mmap threshold, so glibc raises the threshold and keeps the freed
# chunks in per-thread arenas: a 1 GiB download grew RSS by ~16 MiB and left ~8 MiB behind
# each time. 64 KiB chunks come from reused heap memory; the kernel's buffer is untouched.
SEND_CHUNK = 64 * 1024


class BoundedSendChannel(HTTPChannel):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sendbuf_len: int = min(int(getattr(self, "sendbuf_len", SEND_CHUNK)), SEND_CHUNK)


def hang_up_idle(http: BaseWSGIServer | MultiSocketServer) -> None:
    """Close the keep-alive connections that wait for a next request, as waitress's own
    maintenance does after channel_timeout (120 s): its loop runs while any connection is
    open, so one idle client (a browser, a monitoring agent, a test's session) held a
    SIGTERM shutdown for 30 s and more. A connection busy with a request finishes it."""
    channels = http._map if isinstance(http, BaseWSGIServer) else http.map
    for channel in list(channels.values()):
        if isinstance(channel, HTTPChannel) and not channel.requests:
            channel.will_close = True


def bound_send_chunks(http: BaseWSGIServer | MultiSocketServer) -> None:
    """Make every listening socket of `http` hand out BoundedSendChannels."""
    listeners = [http] if isinstance(http, BaseWSGIServer) else list(http.map.values())
    for listener in listeners:
        if isinstance(listener, BaseWSGIServer):
            listener.channel_class = BoundedSendChannel


def start_tftp(fleet: Fleet) -> TftpService | None:
    """Start the TFTP service (when enabled): static files from the images directory, boot
    configs through the same Booter and Renderer as HTTP; its counters join /metrics."""
    s = fleet.settings
    if not s.tftp_enabled:
        return None
    service = TftpService(
        s.images,
        make_dynamic(fleet.booter, fleet.renderer.render_boot),
        host=s.bind,
        port=s.tftp_port,
        max_blksize=s.tftp_max_blksize,
        max_transfers=s.tftp_max_transfers,
        per_source_max=s.tftp_per_source,
        max_timeout=s.tftp_max_timeout,
        max_transfer_seconds=s.tftp_max_transfer_seconds,
        loops=s.tftp_loops,
        workers=s.tftp_threads,
    )
    try:
        service.start()
    except OSError as exc:
        raise StartupError(
            f"cannot listen for TFTP on {s.bind}:{s.tftp_port}: {exc.strerror}"
            + (" (port 69 needs root or CAP_NET_BIND_SERVICE)" if s.tftp_port < 1024 else "")
        ) from None
    fleet.metrics_sources.append(service.stats.render_prometheus)
    return service


def announce(fleet: Fleet, tftp_port: int | None) -> None:
    s = fleet.settings
    click.echo(f"Bootfleet serving on {s.bind}")
    click.echo(f"  HTTP  port {s.http_port}: admin API {fleet.server_url}/api/v1/")
    click.echo(f"        iPXE entry point {fleet.server_url}/boot.ipxe")
    if tftp_port is not None:
        click.echo(f"  TFTP  port {tftp_port}: boot loaders and per-MAC configs from {s.images}")
    else:
        click.echo("  TFTP  off")
    click.echo(f"  advertised to clients as {fleet.server_url}")
    click.echo(f"  registry {_safe_url(s.db_url)}; data in {s.data_dir}")
    click.echo(f"  admin token: bootfleet token create --data-dir {s.data_dir}")


def _safe_url(url: str) -> str:
    """A database URL without its password."""
    head, sep, tail = url.partition("@")
    if not sep or "://" not in head:
        return url
    scheme, _, cred = head.partition("://")
    return f"{scheme}://{cred.split(':', 1)[0]}:***@{tail}"
