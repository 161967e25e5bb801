"""GET /api/v1/templates: the answer-file templates and the variables each one takes."""

from __future__ import annotations

from flask import Blueprint, current_app

from server.catalog import Catalog

bp = Blueprint("templates", __name__, url_prefix="/api/v1")


@bp.get("/templates")
def list_templates() -> dict[str, object]:
    """List every template with its OS family and declared variables."""
    catalog: Catalog = current_app.config["BOOTFLEET_CATALOG"]
    return {"items": catalog.describe()}
