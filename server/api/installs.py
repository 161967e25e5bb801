"""/api/v1/installs/<token>/...: what a running installer calls. The one-time token in the
URL is the credential; it dies when the install ends or is superseded."""

from __future__ import annotations

import logging

import jinja2
from flask import Blueprint, Response

from server.api.body import parse
from server.api.docs import doc
from server.context import fleet, out, peer
from server.errors import Conflict, NotFound
from server.models import DoneReport, FailureReport, InstallPublic, ProgressReport
from server.registry import clients, installs
from server.registry.database import session_scope

log = logging.getLogger(__name__)
bp = Blueprint("installs", __name__, url_prefix="/api/v1/installs")


@bp.get("/<token>/answer")
@bp.get("/<token>/user-data")  # the same file, under the name cloud-init's NoCloud source asks
@doc(
    "The install's rendered answer file (moves booting to installing)",
    auth="install",
    content_type="text/plain",
)
def answer(token: str) -> Response:
    f = fleet()
    with session_scope(f.engine, write=True) as s:
        install, client = installs.by_token(s, token)
        installs.require_active(install, client)
        name = install.profile_snapshot.get("answer_template")
        if not name:
            raise NotFound(f"profile {install.profile_snapshot.get('profile')} has no answer file")
        install, client = installs.answer_fetched(s, token, f.policy, peer())
        try:
            text = f.renderer.render_answer(name, f.booter.context(client, install))
        except jinja2.TemplateError as exc:
            log.error("answer file %s for %s does not render: %s", name, client.mac, exc)
            raise Conflict(f"answer file {name} cannot be rendered: {exc}") from None
    return Response(text, mimetype="text/plain")


@bp.get("/<token>/meta-data")
@doc("cloud-init NoCloud meta-data for this install", auth="install", content_type="text/plain")
def meta_data(token: str) -> Response:
    with session_scope(fleet().engine) as s:
        install, client = installs.by_token(s, token)
        installs.require_active(install, client)
        hostname = fleet().booter.context(client, install)["hostname"]
    return Response(
        f"instance-id: bootfleet-install-{install.id}\nlocal-hostname: {hostname}\n",
        mimetype="text/plain",
    )


@bp.post("/<token>/progress")
@doc(
    "Report progress {percent, message}",
    body=ProgressReport,
    response=InstallPublic,
    auth="install",
)
def progress(token: str) -> Response:
    data = parse(ProgressReport)
    f = fleet()
    with session_scope(f.engine, write=True) as s:
        row = installs.progress(s, token, data.percent, data.message, f.policy, peer())
        return out(clients.install_public(row))


@bp.post("/<token>/done")
@doc(
    "Report success; the machine boots from its disk from now on",
    body=DoneReport,
    response=InstallPublic,
    auth="install",
)
def done(token: str) -> Response:
    data = parse(DoneReport)
    with session_scope(fleet().engine, write=True) as s:
        row = installs.done(s, token, data.message, peer())
        log.info("install %s done, reported from %s", row.id, peer())
        return out(clients.install_public(row))


@bp.post("/<token>/failed")
@doc(
    "Report failure with the installer's log {log, message}",
    body=FailureReport,
    response=InstallPublic,
    auth="install",
)
def failed(token: str) -> Response:
    data = parse(FailureReport)
    with session_scope(fleet().engine, write=True) as s:
        row = installs.failed(s, token, data.log, data.message, peer())
        log.warning("install %s failed, reported from %s: %s", row.id, peer(), row.message)
        return out(clients.install_public(row))
