"""send_image against RFC 9110: ranges, validators, conditional requests, and path refusals."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from email.utils import format_datetime, parsedate_to_datetime
from http.client import HTTPConnection
from pathlib import Path

import flask
import pytest
from flask.testing import FlaskClient

from server.errors import BootfleetError
from server.imagefiles import send_image

DATA = bytes(range(256)) * 40  # 10240 bytes
SIZE = len(DATA)


class BufferedClient(FlaskClient):
    """Reads each body through to the end and closes it, as a WSGI server does."""

    def open(self, *args: object, **kwargs: object):  # type: ignore[no-untyped-def,override]
        kwargs.setdefault("buffered", True)
        return super().open(*args, **kwargs)


def make_app(images_dir: Path) -> flask.Flask:
    app = flask.Flask(__name__)
    app.test_client_class = BufferedClient

    @app.get("/images/<path:relpath>")
    def image(relpath: str) -> flask.Response:
        return send_image(images_dir, relpath)

    @app.errorhandler(BootfleetError)
    def error(exc: BootfleetError) -> tuple[dict, int]:
        return {"error": {"code": exc.code, "message": exc.message}}, exc.status

    return app


@pytest.fixture
def images_dir(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    (root / "deb").mkdir(parents=True)
    (root / "deb/linux").write_bytes(DATA)
    (root / "deb/initrd.gz").write_bytes(b"\x1f\x8b" + DATA)
    (root / "boot.ipxe").write_text("#!ipxe\n")
    (root / "ipxe.efi").write_bytes(b"MZ")
    return root


@pytest.fixture
def client(images_dir: Path) -> FlaskClient:
    return make_app(images_dir).test_client()


def test_full_get(client: FlaskClient) -> None:
    r = client.get("/images/deb/linux")
    assert r.status_code == 200
    assert r.data == DATA
    assert r.headers["Content-Length"] == str(SIZE)
    assert r.headers["Accept-Ranges"] == "bytes"
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert r.headers["ETag"].startswith('"')  # a strong validator, usable with If-Range
    assert parsedate_to_datetime(r.headers["Last-Modified"])


def test_head(client: FlaskClient) -> None:
    r = client.head("/images/deb/linux")
    assert r.status_code == 200 and r.data == b""
    assert r.headers["Content-Length"] == str(SIZE)


@pytest.mark.parametrize(
    ("path", "ctype"),
    [
        ("boot.ipxe", "text/plain; charset=utf-8"),
        ("ipxe.efi", "application/octet-stream"),
        ("deb/initrd.gz", "application/octet-stream"),
    ],
)
def test_content_type_and_no_content_encoding(client: FlaskClient, path: str, ctype: str) -> None:
    r = client.get(f"/images/{path}")
    assert r.headers["Content-Type"] == ctype
    assert "Content-Encoding" not in r.headers  # initrd.gz must reach the loader still packed


@pytest.mark.parametrize(
    ("spec", "first", "last"),
    [
        ("bytes=0-9", 0, 9),
        ("bytes=100-199", 100, 199),
        ("bytes=10000-", 10000, SIZE - 1),
        ("bytes=-5", SIZE - 5, SIZE - 1),
        ("bytes=10200-99999", 10200, SIZE - 1),  # last-pos past the end is clipped
        ("bytes=-99999", 0, SIZE - 1),  # suffix longer than the file: the whole file
    ],
)
def test_single_range(client: FlaskClient, spec: str, first: int, last: int) -> None:
    r = client.get("/images/deb/linux", headers={"Range": spec})
    assert r.status_code == 206
    assert r.headers["Content-Range"] == f"bytes {first}-{last}/{SIZE}"
    assert r.headers["Content-Length"] == str(last - first + 1)
    assert r.data == DATA[first : last + 1]


@pytest.mark.parametrize("spec", [f"bytes={SIZE}-", f"bytes={SIZE + 10}-{SIZE + 20}"])
def test_unsatisfiable_range(client: FlaskClient, spec: str) -> None:
    r = client.get("/images/deb/linux", headers={"Range": spec})
    assert r.status_code == 416
    assert r.headers["Content-Range"] == f"bytes */{SIZE}"


def test_unknown_range_unit_is_ignored(client: FlaskClient) -> None:
    r = client.get("/images/deb/linux", headers={"Range": "items=0-1"})
    assert r.status_code == 200 and r.data == DATA  # RFC 9110 14.2: MUST ignore


@pytest.mark.parametrize("spec", ["bytes=abc", "bytes=9-1", "bytes=-0"])
def test_invalid_byte_range_is_ignored_or_refused(client: FlaskClient, spec: str) -> None:
    r = client.get("/images/deb/linux", headers={"Range": spec})  # RFC 9110 14.2: MAY do either
    assert (r.status_code, r.data) == (200, DATA) or (
        r.status_code == 416 and r.headers["Content-Range"] == f"bytes */{SIZE}"
    )


def test_multiple_ranges_may_be_answered_whole(client: FlaskClient) -> None:
    r = client.get("/images/deb/linux", headers={"Range": "bytes=0-1,5-6"})
    assert r.status_code == 200 and r.data == DATA  # RFC 9110 14.2: a server MAY ignore Range


def test_if_none_match(client: FlaskClient) -> None:
    etag = client.get("/images/deb/linux").headers["ETag"]
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        r = client.get("/images/deb/linux", headers={"If-None-Match": header})
        assert r.status_code == 304, header
        assert r.data == b""
        assert r.headers["ETag"] == etag
    r = client.get("/images/deb/linux", headers={"If-None-Match": '"other"'})
    assert r.status_code == 200


def test_if_modified_since(client: FlaskClient) -> None:
    last = client.get("/images/deb/linux").headers["Last-Modified"]
    assert client.get("/images/deb/linux", headers={"If-Modified-Since": last}).status_code == 304
    old = format_datetime(parsedate_to_datetime("Mon, 01 Jan 2001 00:00:00 GMT"), usegmt=True)
    assert client.get("/images/deb/linux", headers={"If-Modified-Since": old}).status_code == 200


def test_if_range(client: FlaskClient, images_dir: Path) -> None:
    etag = client.get("/images/deb/linux").headers["ETag"]
    r = client.get("/images/deb/linux", headers={"Range": "bytes=0-3", "If-Range": etag})
    assert r.status_code == 206 and r.data == DATA[:4]
    r = client.get("/images/deb/linux", headers={"Range": "bytes=0-3", "If-Range": '"stale"'})
    assert r.status_code == 200 and r.data == DATA
    # The file changed since the client's copy: the ETag moves, the range is not applied.
    (images_dir / "deb/linux").write_bytes(DATA[::-1] + b"x")
    r = client.get("/images/deb/linux", headers={"Range": "bytes=0-3", "If-Range": etag})
    assert r.status_code == 200 and r.headers["ETag"] != etag


@pytest.fixture
def hostile(images_dir: Path, tmp_path: Path) -> Path:
    (tmp_path / "secret").write_text("TOP-SECRET-CONTENT")
    (images_dir / "out").symlink_to(tmp_path / "secret")
    (images_dir / "outdir").symlink_to(tmp_path)
    (images_dir / "inside").symlink_to(images_dir / "deb/linux")
    (images_dir / ".deb.tmp").mkdir()
    (images_dir / ".deb.tmp/linux").write_bytes(b"half")
    os.mkfifo(images_dir / "fifo")
    return images_dir


@pytest.mark.parametrize(
    "path",
    [
        "../secret",
        "deb/../../secret",
        "%2e%2e/secret",
        "deb/%2e%2e/%2e%2e/secret",
        "out",
        "outdir/secret",
        ".deb.tmp/linux",
        "fifo",
        "deb",
        "deb/",
        "nope",
        "deb\\linux",
        "deb/./linux",
    ],
)
def test_refusals_are_404(client: FlaskClient, hostile: Path, path: str) -> None:
    r = client.get(f"/images/{path}")
    assert r.status_code == 404, path
    assert b"TOP-SECRET" not in r.data


def test_symlink_inside_the_root_is_served(client: FlaskClient, hostile: Path) -> None:
    assert client.get("/images/inside").data == DATA


SERVER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import flask, waitress
    from server.imagefiles import send_image
    app = flask.Flask("bench")
    root = Path(sys.argv[1])
    app.add_url_rule("/images/<path:p>", view_func=lambda p: send_image(root, p))
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
    print(server.effective_port, flush=True)
    server.run()
    """
)


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


@pytest.mark.slow
def test_memory_stays_flat_serving_1gib_to_several_clients(tmp_path: Path) -> None:
    size = 1 << 30
    with (tmp_path / "big.img").open("wb") as f:
        f.truncate(size)  # sparse: costs no disk
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())

        def fetch(headers: dict[str, str], counts: list[int]) -> None:
            conn = HTTPConnection("127.0.0.1", port, timeout=120)
            conn.request("GET", "/images/big.img", headers=headers)
            r = conn.getresponse()
            total = 0
            while chunk := r.read(1 << 20):
                total += len(chunk)
            counts.append(total)
            conn.close()

        warm: list[int] = []
        fetch({"Range": "bytes=0-1023"}, warm)
        baseline = _kib(proc.pid, "VmRSS")
        counts: list[int] = []
        clients = [threading.Thread(target=fetch, args=({}, counts)) for _ in range(3)]
        for t in clients:
            t.start()
        for t in clients:
            t.join()
        peak = _kib(proc.pid, "VmHWM")
        assert warm == [1024]
        assert counts == [size] * 3
        print(f"RSS baseline {baseline} KiB, peak {peak} KiB")
        # Buffering one client's whole file would cost 1 GiB; streaming stays far below.
        assert peak - baseline < 128 * 1024, f"RSS grew by {(peak - baseline) // 1024} MiB"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
