"""The images page (server/web/images.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from server import images
from server.config import Settings
from server.web.images import human_size, image_files


def test_lists_files_and_the_profiles_using_them(ui: Any, registered: str) -> None:
    html = ui.get("/ui/images").text
    assert "debian/linux" in html and "debian/initrd.gz" in html
    assert html.count('<a href="/ui/profiles/debian12">debian12</a>') == 2


def test_imported_images_with_their_profiles(
    ui: Any, settings: Settings, tmp_path: Path, client: Any, auth: dict[str, str]
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "vmlinuz").write_bytes(b"k" * 2048)
    (src / "initrd.img").write_bytes(b"i" * 1024)
    images.import_image(settings.images, "ubuntu24", src / "vmlinuz", [src / "initrd.img"])
    r = client.post(
        "/api/v1/profiles",
        json={"name": "u24", "kernel": "ubuntu24/vmlinuz", "initrd": ["ubuntu24/initrd.img"]},
        headers=auth,
    )
    assert r.status_code == 201, r.text
    html = ui.get("/ui/images").text
    row = html.split('<th scope="row">ubuntu24</th>', 1)[1].split("</tr>", 1)[0]
    assert "ubuntu24/vmlinuz" in row and "ubuntu24/initrd.img" in row
    assert "KiB" in row  # the kernel, the initrd and the manifest
    assert '<a href="/ui/profiles/u24">u24</a>' in row


def test_a_damaged_image_is_a_message_not_a_500(ui: Any, settings: Settings) -> None:
    broken = settings.images / "broken"
    broken.mkdir()
    (broken / "image.json").write_text("{not json")
    r = ui.get("/ui/images")
    assert r.status_code == 200
    assert "Could not read the imported images" in r.text
    assert "broken/image.json" in r.text  # the file list still shows


def test_image_files_skips_symlinks_and_stops_at_the_limit(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    for name in ("a/one", "a/two", "b"):
        (tmp_path / name).write_bytes(b"x" * 3)
    os.symlink("/etc/passwd", tmp_path / "a" / "escape")
    os.symlink(tmp_path / "a", tmp_path / "loop")
    files, cut = image_files(tmp_path)
    assert [f.path for f in files] == ["a/one", "a/two", "b"]
    assert not cut and files[0].size == 3
    files, cut = image_files(tmp_path, limit=2)
    assert len(files) == 2 and cut


def test_missing_images_dir_is_an_empty_list(tmp_path: Path) -> None:
    assert image_files(tmp_path / "nope") == ([], False)


def test_empty_images_dir_page(ui: Any, settings: Settings) -> None:
    for path in sorted(settings.images.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    assert "The images directory is empty." in ui.get("/ui/images").text


def test_human_size() -> None:
    assert [human_size(n) for n in (0, 1023, 1024, 5 * 2**20, 3 * 2**30, 2**42)] == [
        "0 B",
        "1023 B",
        "1.0 KiB",
        "5.0 MiB",
        "3.0 GiB",
        "4096.0 GiB",
    ]
