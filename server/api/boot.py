"""What firmware and boot loaders fetch over HTTP: iPXE scripts and image files. No auth:
PXE has none. Anything that goes wrong here answers with local boot, never an install."""

from __future__ import annotations

import logging
from dataclasses import replace
from urllib.parse import unquote

import jinja2
from flask import Blueprint, Response, request
from sqlalchemy import func
from sqlmodel import select

from server.api.docs import doc
from server.bootspec import BootSpec
from server.context import fleet, peer
from server.errors import BootfleetError, InvalidInput
from server.imagefiles import send_image
from server.macaddr import normalize_mac
from server.models import Client
from server.registry import clients, discovered
from server.registry.database import session_scope
from server.version import VERSION

log = logging.getLogger(__name__)
bp = Blueprint("boot", __name__)

IPXE = "text/plain; charset=utf-8"


@bp.get("/boot.ipxe")
@doc(
    "Static iPXE script that chains to this machine's own script",
    auth=None,
    content_type=IPXE,
    errors=(),
)
def boot_ipxe() -> Response:
    text = fleet().renderer.render_boot(BootSpec.local(None, "chain"), "ipxe")
    return Response(text, mimetype="text/plain")


@bp.get("/ipxe")
@doc(
    "This machine's iPXE script: its installer if a reinstall is pending, else local boot",
    auth=None,
    content_type=IPXE,
    errors=(503,),
    query={
        "mac": ("string", "the machine's MAC (iPXE ${mac})"),
        "arch": ("string", "iPXE ${buildarch}"),
        "platform": ("string", "iPXE ${platform}"),
    },
)
def ipxe_script() -> Response:
    f = fleet()
    mac = request.args.get("mac")
    arch = request.args.get("arch") or None
    # A busy registry raises Unavailable: 503, and the chain script's `|| exit` boots the disk.
    spec = f.booter.resolve(mac, arch, peer())
    if spec.unregistered and f.settings.unknown_menu:
        spec = replace(spec, action="menu")
    return _ipxe(spec)


@bp.get("/ipxe/register")
@doc(
    "From the unknown-machine menu: record this machine and its hardware facts for an admin "
    "to approve; it then boots from its disk",
    auth=None,
    content_type=IPXE,
    errors=(503,),
    query={
        "mac": ("string", "the machine's MAC (iPXE ${mac})"),
        "manufacturer": ("string", "iPXE ${manufacturer}"),
        "product": ("string", "iPXE ${product}"),
        "serial": ("string", "iPXE ${serial}"),
        "uuid": ("string", "iPXE ${uuid}"),
    },
)
def ipxe_register() -> Response:
    """Never installs anything: the answer is local boot, whatever was asked."""
    f = fleet()
    try:
        mac = normalize_mac(request.args.get("mac") or "")
    except InvalidInput:
        return _ipxe(BootSpec.local(None, "malformed MAC: local boot"))
    if not f.settings.unknown_menu:
        return _ipxe(BootSpec.local(mac, "the unknown-machine menu is off: local boot"))
    # iPXE's :uristring leaves "+" as it is (RFC 3986 allows it), and a query string read as
    # a form turns "+" into a space ("Q35 + ICH9" came out "Q35   ICH9"): plain percent-decoding.
    pairs = (p.partition("=") for p in request.query_string.decode("latin-1").split("&"))
    raw = {name: value for name, _, value in pairs}
    facts: dict[str, str | None] = {n: unquote(raw.get(n, "")) for n in discovered.FACTS}
    with session_scope(f.engine, write=True) as s:
        asked = discovered.request_registration(s, mac, facts, peer())
    if not asked:
        return _ipxe(BootSpec.local(mac, "registered already: local boot"))
    log.info("registration requested by %s (%s)", mac, peer())
    return _ipxe(BootSpec(action="requested", mac=mac, reason="registration requested"))


def _ipxe(spec: BootSpec) -> Response:
    f = fleet()
    try:
        text = f.renderer.render_boot(spec, "ipxe")
    except (jinja2.TemplateError, InvalidInput) as exc:  # boot/ipxe.j2 edited on disk
        log.error("iPXE script for %s (%s) does not render: %s", spec.mac, spec.reason, exc)
        raise BootfleetError("the boot script does not render; the server log says why") from None
    return Response(text, mimetype="text/plain")


@bp.get("/images/<path:relpath>")
@doc(
    "A file under the images directory (Range, ETag, Content-Length)",
    auth=None,
    content_type="application/octet-stream",
    errors=(404,),
)
def image(relpath: str) -> Response:
    return send_image(fleet().settings.images, relpath)


@bp.get("/healthz")
@doc("Liveness and registry reachability", auth=None, content_type="text/plain", errors=(503,))
def healthz() -> Response:
    with session_scope(fleet().engine) as s:
        s.exec(select(func.count()).select_from(Client)).one()
    return Response(f"ok\nbootfleet {VERSION}\n", mimetype="text/plain")


@bp.get("/metrics")
@doc("Prometheus metrics", auth=None, content_type="text/plain", errors=(503,))
def metrics() -> Response:
    f = fleet()
    lines = [
        "# HELP bootfleet_build_info The running release; always 1.",
        "# TYPE bootfleet_build_info gauge",
        f'bootfleet_build_info{{version="{VERSION}"}} 1',
        "# HELP bootfleet_clients Registered clients by lifecycle state.",
        "# TYPE bootfleet_clients gauge",
    ]
    with session_scope(f.engine) as s:
        counts = clients.count_by_state(s)
    for state, count in sorted(counts.items()):
        lines.append(f'bootfleet_clients{{state="{state}"}} {count}')
    text = "\n".join(lines) + "\n"
    for source in f.metrics_sources:
        text += source()
    return Response(text, mimetype="text/plain; version=0.0.4")
