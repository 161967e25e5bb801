"""A real `bootfleet serve` inside the lab namespace, set up the way the README tells admins to.

Boot loaders come from `bootfleet images bootloaders`, the test installer from `bootfleet images
import`, the admin token from `bootfleet token create`; everything else goes through the HTTP
API. The test answer template (installer/answers/) is added to a copy of pxe_templates/.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..serve import bootfleet_cli, cli, serve_command
from .installer.build import Installer
from .lab import HTTP_PORT, SERVER_IP, NsHttp

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
IMAGE = "e2e-installer"
# Short deadlines so the "installer never calls back" case ends within the test's budget;
# the real installers here report within seconds of every step.
BOOT_TIMEOUT = 90
PROGRESS_TIMEOUT = 25


class Network(Protocol):
    """Where the server runs: the netns lab (Lab) or the host beside a libvirt bridge."""

    def popen(self, cmd: Sequence[str], log: Path) -> subprocess.Popen[bytes]: ...

    def http(self, port: int = HTTP_PORT, host: str | None = None) -> NsHttp: ...


@dataclass
class Bootfleet:
    lab: Network
    root: Path
    installer: Installer
    address: str = SERVER_IP
    token: str = ""
    api: NsHttp | None = None
    proc: subprocess.Popen[bytes] | None = None
    profiles: set[str] = field(default_factory=set)
    boot_timeout: int = BOOT_TIMEOUT
    progress_timeout: int = PROGRESS_TIMEOUT
    serve_args: tuple[str, ...] = ()  # more `bootfleet serve` flags (proxyDHCP, --unknown-menu)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def templates_dir(self) -> Path:
        return self.root / "templates"

    @property
    def log(self) -> Path:
        return self.root / "bootfleet.log"

    def cli(self, *args: str) -> str:
        """Run `bootfleet ARGS... --data-dir D` (a leaf command's own --data-dir)."""
        return cli(*args, data_dir=self.data_dir, timeout=600)

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        shutil.copytree(REPO / "pxe_templates", self.templates_dir)
        for f in (HERE / "installer" / "answers").iterdir():
            shutil.copy(f, self.templates_dir / "answers" / f.name)
        images = ["--images-dir", str(self.images_dir)]
        subprocess.run(
            [*bootfleet_cli(), "images", *images, "bootloaders"], check=True, capture_output=True
        )
        subprocess.run(
            [
                *bootfleet_cli(),
                "images",
                *images,
                "import",
                IMAGE,
                "--kernel",
                str(self.installer.kernel),
                "--initrd",
                str(self.installer.initrd),
            ],
            check=True,
            capture_output=True,
        )

    def start(self) -> Bootfleet:
        self.prepare()
        self.launch()
        self.token = self.cli("token", "create").strip()
        return self

    def restart(self, serve_args: tuple[str, ...]) -> None:
        """Stop `bootfleet serve` and start it again with other flags: same data, same token."""
        from .lab import stop_process

        stop_process(self.proc)
        if self.api is not None:
            self.api.close()
        self.serve_args = serve_args
        self.launch()

    def launch(self) -> None:
        cmd = serve_command(
            self.data_dir,
            self.images_dir,
            "--templates-dir",
            str(self.templates_dir),
            "--advertise",
            self.address,
            "--boot-timeout",
            str(self.boot_timeout),
            "--progress-timeout",
            str(self.progress_timeout),
            "--reap-interval",
            "1",
            "--log-level",
            "info",
            *self.serve_args,
            bind=self.address,
            http_port=HTTP_PORT,
            tftp_port=69,
        )
        self.proc = self.lab.popen(cmd, self.log)
        self.api = self.lab.http(host=self.address)
        try:
            self.api.wait_up("/healthz", timeout=60)
        except TimeoutError:
            raise RuntimeError(f"bootfleet serve did not come up:\n{self.log_text()}") from None

    def import_netboot(self, name: str, tree: Path) -> None:
        """`bootfleet images import NAME --from-netboot TREE`, as the README tells admins."""
        subprocess.run(
            [
                *bootfleet_cli(),
                "images",
                "--images-dir",
                str(self.images_dir),
                "import",
                name,
                "--from-netboot",
                str(tree),
            ],
            check=True,
            capture_output=True,
        )

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    # --- the admin API -------------------------------------------------------------------

    def call(self, method: str, path: str, body: object = None) -> object:
        assert self.api is not None
        return self.api.json(method, f"/api/v1{path}", body, self.token)

    def profile(self, name: str, cmdline: str) -> str:
        """Create (once) a profile booting the test installer with `cmdline`."""
        if name not in self.profiles:
            self.call(
                "POST",
                "/profiles",
                {
                    "name": name,
                    "kernel": f"{IMAGE}/{self.installer.kernel.name}",
                    "initrd": [f"{IMAGE}/{self.installer.initrd.name}"],
                    "cmdline": cmdline,
                    "answer_template": "bootfleet-e2e",
                },
            )
            self.profiles.add(name)
        return name

    def register(self, mac: str, profile: str, hostname: str) -> dict[str, object]:
        return self.call(
            "POST",
            "/clients",
            {  # type: ignore[return-value]
                "mac": mac,
                "hostname": hostname,
                "profile": profile,
            },
        )

    def reinstall(self, mac: str) -> dict[str, object]:
        return self.call("POST", f"/clients/{mac}/reinstall")  # type: ignore[return-value]

    def client(self, mac: str) -> dict[str, object]:
        return self.call("GET", f"/clients/{mac}")  # type: ignore[return-value]

    def state(self, mac: str) -> str:
        return str(self.client(mac)["state"])

    def events(self, mac: str) -> list[dict[str, object]]:
        items = self.call("GET", f"/clients/{mac}/events")["items"]  # type: ignore[index]
        return list(reversed(items))  # oldest first

    def install(self, mac: str, install_id: int) -> dict[str, object]:
        return self.call("GET", f"/clients/{mac}/installs/{install_id}")  # type: ignore[return-value]

    def close(self) -> None:
        from .lab import stop_process

        stop_process(self.proc)
        if self.api is not None:
            self.api.close()


class StateWatch:
    """Polls a client's state and keeps every distinct state seen, in order."""

    def __init__(self, server: Bootfleet, mac: str) -> None:
        self.server, self.mac = server, mac
        self.seen: list[str] = []

    def poll(self) -> str:
        state = self.server.state(self.mac)
        if not self.seen or self.seen[-1] != state:
            self.seen.append(state)
        return state

    def until(self, states: set[str], timeout: float, vm: object = None) -> str:
        deadline = time.monotonic() + timeout
        while True:
            state = self.poll()
            if state in states:
                return state
            if time.monotonic() > deadline:
                tail = getattr(vm, "tail", lambda: "")()
                raise AssertionError(
                    f"{self.mac}: state {state!r} after {timeout}s (seen {self.seen}), "
                    f"wanted {sorted(states)}; serial:\n{tail}"
                )
            time.sleep(0.25)
