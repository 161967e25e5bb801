"""The template catalog: sidecar loading, describe(), and check()'s validation table."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.catalog import Catalog
from server.errors import InvalidInput

TEMPLATES = Path(__file__).resolve().parents[1] / "pxe_templates"
HASH = "$6$saltsalt$" + "b" * 86
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl a@b"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog(TEMPLATES)


def test_names_and_describe(catalog: Catalog) -> None:
    names = ["debian-preseed", "kickstart", "ubuntu-autoinstall", "windows-unattend"]
    assert catalog.names() == names
    assert catalog.exists("kickstart") and not catalog.exists("nope")
    described = catalog.describe()
    assert [d["name"] for d in described] == names
    preseed = described[0]
    assert preseed["os"] == "debian"
    variables = {v["name"]: v for v in preseed["variables"]}  # type: ignore[attr-defined]
    assert variables["root_password_hash"] == {
        "name": "root_password_hash",
        "type": "password_hash",
        "required": True,
        "default": None,
        "description": "crypt(3) hash of root's password (mkpasswd -m sha-512)",
    }
    assert variables["ssh_keys"]["items"] == "ssh_key"


def test_answers_dir_itself_works() -> None:
    assert Catalog(TEMPLATES / "answers").names() == Catalog(TEMPLATES).names()


def test_check_fills_defaults_and_coerces(catalog: Catalog) -> None:
    got = catalog.check(
        "debian-preseed",
        {"root_password_hash": HASH, "network_boot_first": "no", "other_os_var": "x"},
    )
    assert got["root_password_hash"] == HASH
    assert got["network_boot_first"] is False
    assert got["locale"] == "en_US.UTF-8"
    assert got["packages"] == [] and got["disk"] is None
    assert "other_os_var" not in got
    win = catalog.check("windows-unattend", {"admin_password": "s3cret", "disk_number": "1"})
    assert win["disk_number"] == 1


def test_unknown_template(catalog: Catalog) -> None:
    with pytest.raises(InvalidInput) as exc:
        catalog.check("gentoo", {})
    assert exc.value.field == "answer_template"


BAD = [
    # (template, variables, field)
    ("debian-preseed", {"root_password_hash": None}, "root_password_hash"),
    ("debian-preseed", {"root_password_hash": "hunter2"}, "root_password_hash"),
    ("debian-preseed", {"root_password_hash": HASH + "\nd-i x string y"}, "root_password_hash"),
    ("debian-preseed", {"domain": "example.org\nd-i passwd/root-login"}, "domain"),
    ("debian-preseed", {"domain": "-bad-.org"}, "domain"),
    ("debian-preseed", {"domain": "a_b.org"}, "domain"),
    ("debian-preseed", {"domain": "x" * 64 + ".org"}, "domain"),
    ("debian-preseed", {"domain": 5}, "domain"),
    ("debian-preseed", {"mirror": "ftp://deb.debian.org/debian"}, "mirror"),
    ("debian-preseed", {"mirror": "http://"}, "mirror"),
    ("debian-preseed", {"mirror": "http://h/x'; rm -rf /"}, "mirror"),
    ("debian-preseed", {"mirror": "http://h:99999/"}, "mirror"),
    ("debian-preseed", {"proxy": "not a url"}, "proxy"),
    ("debian-preseed", {"disk": "sda"}, "disk"),
    ("debian-preseed", {"disk": "/dev/../etc/passwd"}, "disk"),
    ("debian-preseed", {"disk": "/dev/sda; reboot"}, "disk"),
    ("debian-preseed", {"ssh_keys": KEY}, "ssh_keys"),
    ("debian-preseed", {"ssh_keys": [KEY, 3]}, "ssh_keys"),
    ("debian-preseed", {"ssh_keys": ["ssh-ed25519 AAAA' x"]}, "ssh_keys"),
    ("debian-preseed", {"ssh_keys": [KEY + "\nrm -rf /"]}, "ssh_keys"),
    ("debian-preseed", {"packages": ["vim; reboot"]}, "packages"),
    ("debian-preseed", {"locale": "english"}, "locale"),
    ("debian-preseed", {"timezone": "Europe/Berlin\r"}, "timezone"),
    ("debian-preseed", {"network_boot_first": "maybe"}, "network_boot_first"),
    ("debian-preseed", {"install_url": "http://evil/"}, "install_url"),
    ("kickstart", {"selinux": "off"}, "selinux"),
    ("ubuntu-autoinstall", {"admin_user": "Root User"}, "admin_user"),
    ("windows-unattend", {"admin_password": ""}, "admin_password"),
    ("windows-unattend", {"admin_password": "a\nb"}, "admin_password"),
    ("windows-unattend", {"admin_password": "x", "disk_number": True}, "disk_number"),
    ("windows-unattend", {"admin_password": "x", "disk_number": -1}, "disk_number"),
    ("windows-unattend", {"admin_password": "x", "image_index": "one"}, "image_index"),
    ("windows-unattend", {"admin_password": "x", "product_key": "ABC"}, "product_key"),
]


@pytest.mark.parametrize(("name", "variables", "field"), BAD)
def test_bad_variables_name_the_field(
    catalog: Catalog, name: str, variables: dict, field: str
) -> None:
    base = {"root_password_hash": HASH} if name != "windows-unattend" else {}
    with pytest.raises(InvalidInput) as exc:
        catalog.check(name, {**base, **variables})
    assert exc.value.field == f"variables.{field}"
    assert exc.value.status == 400


GOOD = [
    ("domain", "Example.ORG.", "example.org"),
    ("domain", "a-b.c1.example", "a-b.c1.example"),
    ("mirror", "https://mirror.example:8443/debian/", "https://mirror.example:8443/debian/"),
    ("disk", "/dev/disk/by-id/nvme-SAMSUNG_1", "/dev/disk/by-id/nvme-SAMSUNG_1"),
    ("ssh_keys", (KEY,), [KEY]),
    (
        "packages",
        ["linux-image-amd64", "g++", "libc6:i386"],
        ["linux-image-amd64", "g++", "libc6:i386"],
    ),
    ("root_password_hash", "$y$j9T$salt$" + "c" * 43, "$y$j9T$salt$" + "c" * 43),
]


@pytest.mark.parametrize(("var", "value", "expected"), GOOD)
def test_good_values(catalog: Catalog, var: str, value: object, expected: object) -> None:
    got = catalog.check("debian-preseed", {"root_password_hash": HASH, var: value})
    assert got[var] == expected


def test_broken_sidecars_are_refused(tmp_path: Path) -> None:
    answers = tmp_path / "answers"
    answers.mkdir()
    (answers / "x.j2").write_text("")
    (answers / "x.toml").write_text('[variables.a]\ntype = "colour"\n')
    with pytest.raises(ValueError, match="unknown type"):
        Catalog(tmp_path)
    (answers / "x.toml").write_text('[variables.a]\ntype = "url"\ndefault = "ftp://x"\n')
    with pytest.raises(ValueError, match="bad default"):
        Catalog(tmp_path)
    (answers / "x.toml").write_text('[variables.mac]\ntype = "string"\n')
    with pytest.raises(ValueError, match="reserved"):
        Catalog(tmp_path)
    (answers / "y.toml").write_text("")
    (answers / "x.toml").write_text("")
    with pytest.raises(ValueError, match=r"no template y\.j2"):
        Catalog(tmp_path)
