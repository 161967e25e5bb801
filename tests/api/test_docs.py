from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate


def test_openapi_document_is_valid(client: FlaskClient) -> None:
    r = client.get("/api/v1/openapi.json")
    assert r.status_code == 200
    validate(r.json)


def test_every_api_route_is_documented(app: Flask, client: FlaskClient) -> None:
    spec = client.get("/api/v1/openapi.json").json
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.rule == "/api/v1/openapi.json":
            continue
        if rule.endpoint == "root" or rule.endpoint.startswith("web."):
            continue  # the admin web UI's HTML pages (server/web/) are not part of the API
        path = rule.rule
        for name in rule.arguments:
            path = path.replace(f"<int:{name}>", f"{{{name}}}").replace(
                f"<path:{name}>", f"{{{name}}}"
            )
            path = path.replace(f"<{name}>", f"{{{name}}}")
        assert path in spec["paths"], rule.rule
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            assert method.lower() in spec["paths"][path], (method, rule.rule)


def test_field_names_are_the_product(client: FlaskClient) -> None:
    schemas = client.get("/api/v1/openapi.json").json["components"]["schemas"]
    assert set(schemas["ProfileCreate"]["properties"]) == {
        "name",
        "kernel",
        "initrd",
        "cmdline",
        "answer_template",
        "variables",
    }
    assert set(schemas["ClientCreate"]["properties"]) == {
        "mac",
        "hostname",
        "profile",
        "groups",
        "variables",
    }
    assert {"state", "install", "mac", "hostname", "profile", "groups", "variables"} <= set(
        schemas["ClientPublic"]["properties"]
    )
    assert {"progress", "message"} <= set(schemas["InstallPublic"]["properties"])
    assert schemas["ProfileCreate"]["additionalProperties"] is False
