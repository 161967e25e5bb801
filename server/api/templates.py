"""GET /api/v1/templates: the answer-file templates and the variables each one takes."""

from __future__ import annotations

from flask import Response

from server.api.auth import admin_blueprint
from server.api.docs import doc
from server.api.schemas import TemplateList
from server.context import fleet, out

bp = admin_blueprint("templates", __name__)


@bp.get("/templates")
@doc("List the answer-file templates with their OS family and variables", response=TemplateList)
def list_templates() -> Response:
    # exclude_unset: `items`/`choices` appear only for the variables that have them
    return out(
        TemplateList.model_validate({"items": fleet().catalog.describe()}), exclude_unset=True
    )
