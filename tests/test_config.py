from pathlib import Path

import pytest

from server.config import Settings
from server.errors import InvalidInput


def test_defaults() -> None:
    s = Settings.load(env={})
    assert s.http_port == 8080
    assert s.bind == "0.0.0.0"
    assert s.images == s.data_dir / "images"
    assert s.db_url == f"sqlite:///{s.data_dir / 'bootfleet.db'}"
    assert s.boot_timeout == 1800 and s.progress_timeout == 7200


def test_environment_overrides_defaults() -> None:
    env = {
        "BOOTFLEET_HTTP_PORT": "9090",
        "BOOTFLEET_DATA_DIR": "/srv/bf",
        "BOOTFLEET_TFTP_ENABLED": "no",
        "BOOTFLEET_REAP_INTERVAL": "2.5",
        "UNRELATED": "x",
    }
    s = Settings.load(env=env)
    assert s.http_port == 9090
    assert s.data_dir == Path("/srv/bf")
    assert s.images == Path("/srv/bf/images")
    assert s.tftp_enabled is False
    assert s.reap_interval == 2.5


def test_flags_override_environment() -> None:
    env = {"BOOTFLEET_HTTP_PORT": "9090", "BOOTFLEET_BIND": "198.18.0.1"}
    s = Settings.load(env=env, overrides={"http_port": 7070, "bind": None})
    assert s.http_port == 7070  # flag wins over the environment
    assert s.bind == "198.18.0.1"  # an unset flag (None) does not mask the environment


def test_empty_environment_value_is_ignored() -> None:
    assert Settings.load(env={"BOOTFLEET_HTTP_PORT": ""}).http_port == 8080


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BOOTFLEET_HTTP_PORT", "eighty"),
        ("BOOTFLEET_TFTP_ENABLED", "maybe"),
        ("BOOTFLEET_REAP_INTERVAL", "soon"),
    ],
)
def test_bad_environment_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(InvalidInput, match=name):
        Settings.load(env={name: value})


def test_unknown_override_refused() -> None:
    with pytest.raises(InvalidInput, match="unknown setting"):
        Settings.load(env={}, overrides={"colour": "blue"})


def test_database_url_wins_over_data_dir() -> None:
    s = Settings.load(env={"BOOTFLEET_DATABASE_URL": "postgresql://bf@db/bootfleet"})
    assert s.db_url == "postgresql://bf@db/bootfleet"


@pytest.mark.parametrize(
    ("env", "overrides", "named"),
    [
        ({"BOOTFLEET_HTTP_THREADS": "0"}, {}, "BOOTFLEET_HTTP_THREADS: must be 1 to 256, not 0"),
        ({}, {"http_threads": 0}, "--http-threads: must be 1 to 256"),
        ({}, {"http_port": 70000}, "--http-port: must be 0 to 65535"),
        ({"BOOTFLEET_TFTP_MAX_BLKSIZE": "4"}, {}, "BOOTFLEET_TFTP_MAX_BLKSIZE: must be 8 to"),
        ({}, {"tftp_per_source": -1}, "--tftp-per-source: must be at least 1"),
        ({}, {"rate_limit": -0.5}, "--rate-limit: must be at least 0"),
        ({}, {"reap_interval": 0}, "--reap-interval: must be at least 0.01"),
        ({}, {"tftp_workers": -1}, "--tftp-workers: must be 0 to 64"),
        ({"BOOTFLEET_TFTP_MAX_TIMEOUT": "256"}, {}, "BOOTFLEET_TFTP_MAX_TIMEOUT: must be 1 to 255"),
        ({}, {"tftp_max_transfer_seconds": 0}, "--tftp-max-transfer-seconds: must be 1 to"),
    ],
)
def test_out_of_range_value_is_refused_naming_its_source(
    env: dict[str, str], overrides: dict[str, object], named: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        Settings.load(env=env, overrides=overrides)
    assert str(caught.value).startswith(named)


def test_http_threads_default_and_bounds() -> None:
    assert Settings.load(env={}).http_threads == 4
    assert Settings.load(env={"BOOTFLEET_HTTP_THREADS": "16"}).http_threads == 16
    with pytest.raises(InvalidInput, match="http_threads"):
        Settings(http_threads=0)


def test_tftp_pool_threads_follow_the_database_unless_set() -> None:
    assert Settings.load(env={}).tftp_threads == 1  # SQLite
    pg = {"BOOTFLEET_DATABASE_URL": "postgresql://bf@db/bootfleet"}
    assert Settings.load(env=pg).tftp_threads == 4
    assert Settings.load(env=pg, overrides={"tftp_workers": 2}).tftp_threads == 2
    assert Settings.load(env={"BOOTFLEET_TFTP_WORKERS": "3"}).tftp_threads == 3
