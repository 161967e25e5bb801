"""/api/v1/waves: scheduled, throttled group reinstalls; their progress, pause and cancel."""

from __future__ import annotations

from flask import Response

from server.api.auth import admin_blueprint
from server.api.docs import doc
from server.api.schemas import WaveDetail, WaveList, WaveTurn
from server.context import fleet, out, peer
from server.models import WavePublic
from server.registry import waves
from server.registry.database import session_scope

bp = admin_blueprint("waves", __name__)


@bp.get("/waves")
@doc("List waves, newest first, with their progress", response=WaveList)
def list_waves() -> Response:
    with session_scope(fleet().engine) as s:
        return out(WaveList(items=waves.list_waves(s)))


@bp.get("/waves/<int:wave_id>")
@doc("Show a wave and each member's turn", response=WaveDetail)
def show_wave(wave_id: int) -> Response:
    with session_scope(fleet().engine) as s:
        wave = waves.get(s, wave_id)
        turns = [
            WaveTurn(
                mac=c.mac,
                hostname=c.hostname,
                state=m.state,
                reason=m.reason,
                started_at=m.started_at,
                finished_at=m.finished_at,
            )
            for m, c in waves.members(s, wave_id)
        ]
        return out(WaveDetail(**waves.public(s, wave).model_dump(), members=turns))


@bp.post("/waves/<int:wave_id>/pause")
@doc("Pause: no new turns; members in flight finish", response=WavePublic)
def pause_wave(wave_id: int) -> Response:
    with session_scope(fleet().engine, write=True) as s:
        return out(waves.public(s, waves.pause(s, wave_id)))


@bp.post("/waves/<int:wave_id>/resume")
@doc("Resume a paused wave", response=WavePublic)
def resume_wave(wave_id: int) -> Response:
    with session_scope(fleet().engine, write=True) as s:
        return out(waves.public(s, waves.resume(s, wave_id)))


@bp.post("/waves/<int:wave_id>/cancel")
@doc("Cancel: no new turns; reinstalls not yet booted are cancelled", response=WavePublic)
def cancel_wave(wave_id: int) -> Response:
    with session_scope(fleet().engine, write=True) as s:
        return out(waves.public(s, waves.cancel(s, wave_id, peer())))
