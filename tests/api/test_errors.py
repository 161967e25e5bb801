"""The bad-input table: every row gets a clear JSON error with the right status, never 500."""

import pytest
from flask.testing import FlaskClient

BAD_BODIES = [
    # (method, path, body (bytes or json), status, field)
    ("post", "/api/v1/clients", {"mac": "ff:ff:ff:ff:ff:ff"}, 400, "mac"),
    ("post", "/api/v1/clients", {"mac": "not-a-mac"}, 400, "mac"),
    ("post", "/api/v1/clients", {"mac": 525400123456}, 400, "mac"),
    ("post", "/api/v1/clients", {"mac": "52:54:00:00:00:09", "colour": "red"}, 400, "colour"),
    ("post", "/api/v1/clients", {"mac": "52:54:00:00:00:09", "groups": "lab"}, 400, "groups"),
    ("post", "/api/v1/clients", {"mac": "52:54:00:00:00:09", "groups": ["../x"]}, 400, "groups"),
    (
        "post",
        "/api/v1/clients",
        {"mac": "52:54:00:00:00:09", "hostname": "bad_host!"},
        400,
        "hostname",
    ),
    (
        "post",
        "/api/v1/clients",
        {"mac": "52:54:00:00:00:09", "variables": {"a b": 1}},
        400,
        "variables",
    ),
    (
        "post",
        "/api/v1/clients",
        {"mac": "52:54:00:00:00:09", "variables": {"x": {"y": 1}}},
        400,
        "variables",
    ),
    ("post", "/api/v1/clients", {"hostname": "pc"}, 400, "mac"),
    ("post", "/api/v1/clients", b'{"mac": "52:54:00:00:00:09",', 400, "body"),
    ("post", "/api/v1/clients", b"\xff\xfe\x00garbage", 400, "body"),
    ("post", "/api/v1/clients", b"[1, 2, 3]", 400, "body"),
    ("post", "/api/v1/clients", {"mac": "52:54:00:00:00:09", "profile": "nope"}, 404, None),
    ("post", "/api/v1/profiles", {"name": "x", "kernel": "../../etc/passwd"}, 400, "kernel"),
    ("post", "/api/v1/profiles", {"name": "x", "kernel": "/etc/passwd"}, 400, "kernel"),
    ("post", "/api/v1/profiles", {"name": "x", "kernel": "k", "cmdline": "a\nb"}, 400, "cmdline"),
    ("post", "/api/v1/profiles", {"name": "x y", "kernel": "k"}, 400, "name"),
    ("post", "/api/v1/profiles", {"name": "x", "kernel": "k", "initrd": "i"}, 400, "initrd"),
    (
        "post",
        "/api/v1/profiles",
        {"name": "x", "kernel": "k", "answer_template": "nope"},
        400,
        "answer_template",
    ),
    ("post", "/api/v1/groups", {"name": ""}, 400, "name"),
    ("patch", "/api/v1/clients/52:54:00:00:00:08", {"hostname": "x"}, 404, None),
    ("get", "/api/v1/clients/zz", None, 400, "mac"),
    ("get", "/api/v1/clients?limit=0", None, 400, "limit"),
    ("get", "/api/v1/clients?limit=abc", None, 400, "limit"),
    ("get", "/api/v1/clients?state=sleeping", None, 400, "state"),
    ("get", "/api/v1/clients?group=none", None, 404, None),
    ("get", "/api/v1/profiles/none", None, 404, None),
    ("get", "/api/v1/nothing-here", None, 404, None),
    ("put", "/api/v1/clients", {}, 405, None),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "field"), BAD_BODIES)
def test_bad_input(
    client: FlaskClient,
    auth: dict,
    method: str,
    path: str,
    body: object,
    status: int,
    field: str | None,
) -> None:
    kwargs: dict = {"headers": auth}
    if isinstance(body, bytes):
        kwargs["data"] = body
        kwargs["content_type"] = "application/json"
    elif body is not None:
        kwargs["json"] = body
    r = getattr(client, method)(path, **kwargs)
    assert r.status_code == status, r.text
    assert r.is_json, r.text
    error = r.json["error"]
    assert error["code"] and error["message"]
    if field is not None:
        assert error.get("field") == field, r.text


def test_body_over_one_mib_is_413(client: FlaskClient, auth: dict) -> None:
    r = client.post(
        "/api/v1/clients",
        data=b"x" * (1024 * 1024 + 1),
        headers=auth,
        content_type="application/json",
    )
    assert r.status_code == 413, r.text
    assert r.json["error"]["code"] == "request_entity_too_large"


def test_forbidden_transition_is_409(client: FlaskClient, auth: dict, registered: str) -> None:
    r = client.post(f"/api/v1/clients/{registered}/cancel", headers=auth)
    assert r.status_code == 409, r.text
    assert r.json["error"]["code"] == "forbidden_transition"
    assert "cannot cancel a client that is idle" in r.json["error"]["message"]


def test_duplicate_is_409(client: FlaskClient, auth: dict, registered: str) -> None:
    r = client.post("/api/v1/clients", json={"mac": registered.upper()}, headers=auth)
    assert r.status_code == 409, r.text


def test_unexpected_exception_is_json_500(app, client: FlaskClient) -> None:  # type: ignore[no-untyped-def]
    """The last line of defence: still JSON, and the details stay in the log."""

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("secret detail")

    r = client.get("/boom")
    assert r.status_code == 500 and r.json["error"]["code"] == "internal"
    assert "secret" not in r.text
