"""The web UI's one blueprint, under /ui/. Its own module so that the view modules can
register routes on it without importing the package that imports them."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint(
    "web",
    __name__,
    url_prefix="/ui",
    template_folder="templates",
    static_folder="static",
)
