import pytest
from flask.testing import FlaskClient

from tests.conftest import PROFILE


def add(client: FlaskClient, auth: dict, mac: str, **fields: object) -> dict:
    r = client.post("/api/v1/clients", json={"mac": mac, **fields}, headers=auth)
    assert r.status_code == 201, r.text
    return r.json


def test_create_normalises_and_shows(client: FlaskClient, auth: dict) -> None:
    body = add(
        client,
        auth,
        "52-54-00-AA-BB-01",
        hostname="PC01",
        groups=["b", "a", "a"],
        variables={"disk": "/dev/vda"},
    )
    assert body["mac"] == "52:54:00:aa:bb:01"
    assert body["hostname"] == "pc01" and body["groups"] == ["a", "b"]
    assert body["state"] == "idle" and body["install"] is None
    shown = client.get("/api/v1/clients/5254.00aa.bb01", headers=auth).json
    assert shown == body


def test_update_only_changes_fields_sent(client: FlaskClient, auth: dict, registered: str) -> None:
    r = client.patch(f"/api/v1/clients/{registered}", json={"variables": {"x": 1}}, headers=auth)
    assert r.status_code == 200, r.text
    assert (
        r.json["hostname"] == "pc01"
        and r.json["profile"] == "debian12"
        and r.json["groups"] == ["lab"]
    )
    r = client.patch(
        f"/api/v1/clients/{registered}", json={"profile": None, "groups": []}, headers=auth
    )
    assert r.json["profile"] is None and r.json["groups"] == [] and r.json["variables"] == {"x": 1}


def test_delete_keeps_events(client: FlaskClient, auth: dict, registered: str) -> None:
    assert client.delete(f"/api/v1/clients/{registered}", headers=auth).status_code == 204
    assert client.get(f"/api/v1/clients/{registered}", headers=auth).status_code == 404
    add(client, auth, registered)
    kinds = [
        e["kind"]
        for e in client.get(f"/api/v1/clients/{registered}/events", headers=auth).json["items"]
    ]
    assert kinds == ["registered", "deleted", "registered"]


def test_list_filters_and_paginates(client: FlaskClient, auth: dict) -> None:
    assert client.post("/api/v1/profiles", json=PROFILE, headers=auth).status_code == 201
    for i in range(25):
        add(
            client,
            auth,
            f"52:54:00:00:01:{i:02x}",
            hostname=f"lab{i:02d}",
            profile="debian12" if i % 2 else None,
            groups=["room1"] if i < 10 else ["room2"],
        )
    client.post("/api/v1/clients/52:54:00:00:01:01/reinstall", headers=auth)

    seen, after = [], 0
    while True:
        page = client.get(f"/api/v1/clients?limit=7&after={after}", headers=auth).json
        assert page["total"] == 25
        seen += [c["mac"] for c in page["items"]]
        if page["next"] is None:
            break
        after = page["next"]
    assert len(seen) == 25 == len(set(seen))

    def macs(query: str) -> list[str]:
        r = client.get(f"/api/v1/clients?{query}", headers=auth)
        assert r.status_code == 200, r.text
        assert r.json["total"] == len(r.json["items"])
        return [c["mac"] for c in r.json["items"]]

    assert macs("state=pending") == ["52:54:00:00:01:01"]
    assert len(macs("profile=debian12")) == 12
    assert len(macs("group=room1")) == 10
    assert len(macs("group=room1&profile=debian12")) == 5
    assert macs("q=LAB07") == ["52:54:00:00:01:07"]
    assert macs("q=00:01:1") == [f"52:54:00:00:01:{i:02x}" for i in range(16, 25)]


# Two clients; the second's host name is also the shape of a MAC fragment.
SEARCHED = {"52:54:00:12:34:56": "lab-01", "52:54:00:ab:cd:ef": "ab-12"}
BOTH, FIRST, SECOND = list(SEARCHED), ["52:54:00:12:34:56"], ["52:54:00:ab:cd:ef"]


@pytest.mark.parametrize(
    "q, found",
    [
        ("52:54:00", BOTH),
        ("52-54-00", BOTH),
        ("525400", BOTH),
        ("5254.00", BOTH),  # Cisco's grouping
        ("52-54-00-AB", SECOND),
        ("52:54:00:ab:cd:ef", SECOND),
        ("5254.00AB.CDEF", SECOND),
        ("ABCDEF", SECOND),
        ("34:56", FIRST),
        ("3456", FIRST),
        ("4:00:1", FIRST),  # a fragment that starts inside an octet, and ends inside one
        ("25:40", []),  # octets are not split: 52:54 does not hold 25:40
        ("LAB", FIRST),  # host names, any case
        ("lab-01", FIRST),
        ("ab-12", SECOND),  # a host name, though it reads as a MAC fragment too
        ("nomatch", []),
    ],
)
def test_search_by_any_spelling_of_a_mac(
    client: FlaskClient, auth: dict, q: str, found: list[str]
) -> None:
    for mac, hostname in SEARCHED.items():
        r = client.post("/api/v1/clients", json={"mac": mac, "hostname": hostname}, headers=auth)
        assert r.status_code == 201, r.text
    r = client.get("/api/v1/clients", query_string={"q": q}, headers=auth)
    assert r.status_code == 200, r.text
    assert [c["mac"] for c in r.json["items"]] == found


def test_csv_import_all_rows(client: FlaskClient, auth: dict) -> None:
    assert client.post("/api/v1/profiles", json=PROFILE, headers=auth).status_code == 201
    csv = (
        "mac,hostname,profile,groups\n"
        "52:54:00:00:02:01,a1,debian12,lab;room2\n"
        "\n"
        "525400000202,a2,,\n"
    )
    r = client.post("/api/v1/clients/import", data=csv, content_type="text/csv", headers=auth)
    assert r.status_code == 200, r.text
    assert r.json == {"imported": 2}
    c = client.get("/api/v1/clients/52:54:00:00:02:01", headers=auth).json
    assert c["groups"] == ["lab", "room2"] and c["profile"] == "debian12"


def test_csv_import_is_all_or_nothing_and_names_the_row(client: FlaskClient, auth: dict) -> None:
    csv = "52:54:00:00:03:01,ok1\n52:54:00:00:03:02,ok2\nnot-a-mac,bad\n"
    r = client.post("/api/v1/clients/import", data=csv, content_type="text/csv", headers=auth)
    assert r.status_code == 400 and r.json["error"]["field"] == "row 3", r.text
    assert client.get("/api/v1/clients", headers=auth).json["total"] == 0


def test_csv_import_refuses_duplicates_and_unknown_profiles(
    client: FlaskClient, auth: dict, registered: str
) -> None:
    cases = {
        "52:54:00:00:04:01\n52-54-00-00-04-01\n": "row 2",
        f"{registered}\n": "row 1",
        "52:54:00:00:04:02,h,nope\n": "row 1",
        "52:54:00:00:04:03,h,,g,extra\n": "row 1",
    }
    for csv, where in cases.items():
        r = client.post("/api/v1/clients/import", data=csv, content_type="text/csv", headers=auth)
        assert r.status_code == 400 and r.json["error"]["field"] == where, (csv, r.text)
    r = client.post(
        "/api/v1/clients/import", data=b"\xff\xfe", content_type="text/csv", headers=auth
    )
    assert r.status_code == 400


@pytest.mark.parametrize(
    "body",
    [
        "O\r\U000fb0a9",  # what schemathesis sent: a bare CR inside the first row
        "52:54:00:00:05:01,a\rb\n",
        '52:54:00:00:05:01,"open quote\n',
        "52:54:00:00:05:01," + "x" * 200_000 + "\n",  # over the csv module's field limit
    ],
    ids=["fuzzed", "bare-cr", "open-quote", "huge-field"],
)
def test_csv_import_of_malformed_csv_is_a_400(client: FlaskClient, auth: dict, body: str) -> None:
    r = client.post(
        "/api/v1/clients/import", data=body.encode(), content_type="text/csv", headers=auth
    )
    assert r.status_code == 400, r.text
    assert r.json["error"]["field"].startswith("row "), r.text
    assert client.get("/api/v1/clients", headers=auth).json["total"] == 0


def test_reinstall_and_cancel(client: FlaskClient, auth: dict, registered: str) -> None:
    r = client.post(f"/api/v1/clients/{registered}/reinstall", headers=auth)
    assert r.status_code == 200 and r.json["state"] == "pending"
    again = client.post(f"/api/v1/clients/{registered}/reinstall", headers=auth)
    assert again.status_code == 409  # never two installs at once
    r = client.post(f"/api/v1/clients/{registered}/cancel", headers=auth)
    assert r.status_code == 200 and r.json["state"] == "idle"
    assert r.json["install"]["state"] == "cancelled"
    history = client.get(f"/api/v1/clients/{registered}/installs", headers=auth).json["items"]
    assert [i["state"] for i in history] == ["cancelled"]


def test_reinstall_without_profile_is_400(client: FlaskClient, auth: dict) -> None:
    add(client, auth, "52:54:00:00:05:01")
    r = client.post("/api/v1/clients/52:54:00:00:05:01/reinstall", headers=auth)
    assert r.status_code == 400 and r.json["error"]["field"] == "profile"


def test_install_detail_belongs_to_its_client(
    client: FlaskClient, auth: dict, registered: str
) -> None:
    client.post(f"/api/v1/clients/{registered}/reinstall", headers=auth)
    add(client, auth, "52:54:00:00:06:01")
    assert client.get(f"/api/v1/clients/{registered}/installs/1", headers=auth).status_code == 200
    assert (
        client.get("/api/v1/clients/52:54:00:00:06:01/installs/1", headers=auth).status_code == 404
    )


def test_discovered_lists_unregistered_boots(client: FlaskClient, auth: dict) -> None:
    client.get("/ipxe?mac=52:54:00:00:07:01&arch=x86_64")
    items = client.get("/api/v1/discovered", headers=auth).json["items"]
    assert [(d["mac"], d["last_arch"], d["boots"]) for d in items] == [
        ("52:54:00:00:07:01", "x86_64", 1)
    ]


def test_secret_variables_never_come_back(client: FlaskClient, auth: dict, fleet) -> None:  # type: ignore[no-untyped-def]
    """Password hashes go into answer files, never into API answers; echoing the placeholder
    back in an update keeps the stored value."""
    from server.registry import clients as registry_clients
    from server.registry.database import session_scope

    secret = "$6$salt$" + "h" * 86
    body = add(
        client,
        auth,
        "52:54:00:00:0c:01",
        variables={"root_password_hash": secret, "admin_password": "Pa55", "locale": "C"},
    )
    assert body["variables"] == {
        "root_password_hash": "<redacted>",
        "admin_password": "<redacted>",
        "locale": "C",
    }
    for path in ("/api/v1/clients/52:54:00:00:0c:01", "/api/v1/clients?q=0c:01"):
        assert secret not in client.get(path, headers=auth).text
    r = client.patch(
        "/api/v1/clients/52:54:00:00:0c:01",
        headers=auth,
        json={"variables": {**body["variables"], "locale": "de_DE"}},
    )
    assert r.status_code == 200, r.text
    with session_scope(fleet.engine) as s:
        stored = registry_clients.get(s, "52:54:00:00:0c:01").variables
    assert stored == {"root_password_hash": secret, "admin_password": "Pa55", "locale": "de_DE"}
    profile = {"name": "p", "kernel": "k", "variables": {"root_password_hash": secret}}
    r = client.post("/api/v1/profiles", json=profile, headers=auth)
    assert r.status_code == 201 and secret not in r.text
    assert secret not in client.get("/api/v1/profiles", headers=auth).text
    r = client.post(
        "/api/v1/groups", json={"name": "g", "variables": {"admin_password": "x1"}}, headers=auth
    )
    assert r.json["variables"] == {"admin_password": "<redacted>"}
