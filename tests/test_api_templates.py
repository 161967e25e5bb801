"""GET /api/v1/templates through an in-process Flask app."""

from __future__ import annotations

from pathlib import Path

import flask

from server.api.templates import bp
from server.catalog import Catalog

TEMPLATES = Path(__file__).resolve().parents[1] / "pxe_templates"


def test_lists_the_catalog() -> None:
    app = flask.Flask(__name__)
    catalog = Catalog(TEMPLATES)
    app.config["BOOTFLEET_CATALOG"] = catalog
    app.register_blueprint(bp)
    r = app.test_client().get("/api/v1/templates")
    assert r.status_code == 200, r.text
    assert r.json == {"items": catalog.describe()}
    names = [t["name"] for t in r.json["items"]]
    assert "windows-unattend" in names
