"""Start and stop the servers under test, each on loopback on a free port.

Every process is ours: it is started here, remembered by its PID, and stopped by that PID
(SIGTERM, then SIGKILL after a grace period). Nothing is looked up by name.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench import tftpc

LOOPBACK = "127.0.0.1"
READY_FILE = "ready.txt"


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port free for both UDP and TCP on loopback right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind((LOOPBACK, 0))
            port = int(s.getsockname()[1])
        other = socket.SOCK_STREAM if kind == socket.SOCK_DGRAM else socket.SOCK_DGRAM
        try:
            with socket.socket(socket.AF_INET, other) as s:
                s.bind((LOOPBACK, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port on loopback")


@dataclass
class Server:
    """A running server: what it is, where it listens, and the process to stop."""

    name: str
    proc: subprocess.Popen[bytes]
    tftp_port: int | None = None
    http_port: int | None = None
    log: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)
    # False where /proc cannot account the server's CPU (see tftpd_hpa)
    cpu_accounted: bool = True

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


def _spawn(name: str, argv: list[str], work: Path, env: dict[str, str] | None = None) -> Server:
    log = work / f"{name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
    return Server(name=name, proc=proc, log=log)


def _wait(server: Server, probe: Callable[[], bool], seconds: float = 20.0) -> Server:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if server.proc.poll() is not None:
            break
        if probe():
            return server
        time.sleep(0.1)
    tail = server.log.read_text(errors="replace")[-2000:] if server.log else ""
    server.stop()
    raise RuntimeError(f"{server.name} did not come up on loopback:\n{tail}")


def tftp_ready(port: int) -> Callable[[], bool]:
    def probe() -> bool:
        _, results = tftpc.fetch_many(
            (LOOPBACK, port), [READY_FILE], blksize=512, timeout=0.2, retries=1, deadline=2.0
        )
        return bool(results and results[0].ok)

    return probe


def http_ready(port: int, path: str = "/") -> Callable[[], bool]:
    def probe() -> bool:
        try:
            with urllib.request.urlopen(f"http://{LOOPBACK}:{port}{path}", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    return probe


def tftpd_hpa(root: Path, work: Path) -> Server:
    port = free_port()
    # -L: stay in the foreground; the listener forks one child per transfer (as deployed).
    argv = ["in.tftpd", "-L", "-s", str(root), "-a", f"{LOOPBACK}:{port}", "-u", "nobody"]
    server = _spawn("tftp-hpa", argv, work)
    server.tftp_port = port
    # in.tftpd ignores SIGCHLD, so the kernel reaps its per-transfer children and their CPU
    # time is added to nobody's cutime: /proc cannot total it.
    server.cpu_accounted = False
    return _wait(server, tftp_ready(port))


def dnsmasq(root: Path, work: Path) -> Server:
    # dnsmasq has no option for its TFTP listening port: it is always 69 (--tftp-port-range
    # only moves the transfer ports). So it listens on 127.0.0.1:69, which must be free.
    port = 69
    argv = [
        "dnsmasq",
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--port=0",  # no DNS
        "--enable-tftp",
        f"--tftp-root={root}",
        f"--listen-address={LOOPBACK}",
        "--bind-interfaces",
        "--tftp-max=1024",  # default 50: a 500-client storm needs the admin's usual raise
        "--quiet-tftp",
        f"--pid-file={work / 'dnsmasq.pid'}",
        f"--log-facility={work / 'dnsmasq-syslog.log'}",
        "--user=nobody",
    ]
    server = _spawn("dnsmasq", argv, work)
    server.tftp_port = port
    return _wait(server, tftp_ready(port))


def stock_tftpy(root: Path, work: Path) -> Server:
    port = free_port()
    argv = [sys.executable, "-m", "bench.stock_tftpy", str(root), str(port)]
    server = _spawn("tftpy", argv, work)
    server.tftp_port = port
    return _wait(server, tftp_ready(port))


def nginx(root: Path, work: Path) -> Server:
    port = free_port(socket.SOCK_STREAM)
    conf = work / "nginx.conf"
    conf.write_text(
        f"""worker_processes 2;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    default_type application/octet-stream;
    client_body_temp_path {work}/nginx-body;
    proxy_temp_path {work}/nginx-proxy;
    fastcgi_temp_path {work}/nginx-fastcgi;
    uwsgi_temp_path {work}/nginx-uwsgi;
    scgi_temp_path {work}/nginx-scgi;
    server {{
        listen {LOOPBACK}:{port};
        root {root};
    }}
}}
"""
    )
    argv = ["nginx", "-p", str(work), "-c", str(conf), "-g", "daemon off;"]
    server = _spawn("nginx", argv, work)
    server.http_port = port
    return _wait(server, http_ready(port, "/" + READY_FILE))


def bootfleet_has_tftp() -> bool:
    """Whether this checkout's `bootfleet serve` runs TFTP (server/tftp landed)."""
    try:
        import server.tftp.server  # noqa: F401
    except ImportError:
        return False
    return True


def bootfleet(images: Path, work: Path, *, tftp: bool, extra: list[str] | None = None) -> Server:
    """`bootfleet serve` from this checkout, its registry in `work`, logging at WARNING."""
    http_port = free_port(socket.SOCK_STREAM)
    argv = [
        str(Path(sys.executable).with_name("bootfleet")),
        "serve",
        "--data-dir",
        str(work / "bootfleet-data"),
        "--images-dir",
        str(images),
        "--bind",
        LOOPBACK,
        "--http-port",
        str(http_port),
        "--log-level",
        "WARNING",
    ]
    tftp_port = None
    if tftp:
        tftp_port = free_port()
        argv += ["--tftp-port", str(tftp_port)]
        # Every bench client shares 127.0.0.1, where a classroom has one address per
        # machine: lift the per-source and total caps (dnsmasq gets --tftp-max=1024), and
        # allow the large blocks tftp-hpa and dnsmasq grant in the 8192 column.
        argv += ["--tftp-max-transfers", "1024", "--tftp-per-source", "1024"]
        argv += ["--tftp-max-blksize", "65464"]
    else:
        argv.append("--no-tftp")
    argv += extra or []  # flags under test, e.g. --tftp-loops=2
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOOTFLEET_")}
    # The per-source rate limit on boot scripts (10/s) would throttle the whole simulated
    # classroom, which shares 127.0.0.1; a real one has an address per machine.
    env["BOOTFLEET_RATE_LIMIT"] = "0"
    server = _spawn("bootfleet", argv, work, env)
    server.http_port, server.tftp_port = http_port, tftp_port
    _wait(server, http_ready(http_port, "/healthz"), 60)
    if tftp_port is not None:
        _wait(server, tftp_ready(tftp_port))
    return server


def missing_tools() -> list[str]:
    tools = ["in.tftpd", "dnsmasq", "nginx", "curl", "wrk"]
    return [t for t in tools if shutil.which(t) is None]


def family(pid: int) -> Iterator[int]:
    """`pid` and its live descendants (tftp-hpa forks a process per transfer)."""
    stack = [pid]
    seen: set[int] = set()
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        yield p
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    stack.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue


def rss_kib(pid: int) -> int:
    """Resident set of `pid` and its descendants (worker processes count), in KiB."""
    total = 0
    for p in family(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by `pid` and its live descendants, each with
    the children it has reaped (cutime, cstime: tftp-hpa's finished per-transfer processes).
    A child counts once: live, in the walk; reaped, in its parent's cutime."""
    ticks = 0
    for p in family(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        # proc(5): utime, stime, cutime, cstime are fields 14-17; [0] here is field 3.
        ticks += sum(int(x) for x in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores (/proc/stat)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks[:8]) - idle) / hz, sum(ticks[:8]) / hz
