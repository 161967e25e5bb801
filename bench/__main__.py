"""`python -m bench`: run every section against every peer and write bench/results/<date>.*"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import peers, profile, registry, report, suite, tftpc
from bench.peers import Server

RESULTS = Path(__file__).resolve().parent / "results"
SECTIONS = ("registry", "ipxe", "config", "single", "storm", "window", "download")


def machine() -> dict[str, str]:
    def first_line(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        except OSError:
            return "missing"
        return ((out.stdout or out.stderr).strip().splitlines() or ["?"])[0]

    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    from importlib.metadata import version

    import tftpy  # noqa: F401

    return {
        "nproc": str(os.cpu_count()),
        "CPU": cpu,
        "kernel": platform.release(),
        "Python": platform.python_version(),
        "tftpy": version("tftpy"),
        "tftp-hpa": first_line(["in.tftpd", "-V"]),
        "dnsmasq": first_line(["dnsmasq", "--version"]),
        "nginx": first_line(["nginx", "-v"]),
        "curl": first_line(["curl", "--version"]),
        "wrk": first_line(["wrk", "-v"]),
        "load average at start": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes, one run: a smoke test")
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure (median taken)")
    ap.add_argument("--clients", type=int, default=100_000, help="registered clients")
    ap.add_argument("--storm-repeat", type=int, default=5, help="rounds of the boot storms")
    ap.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    ap.add_argument("--out", type=Path, default=RESULTS, help="where results go")
    ap.add_argument("--no-bootfleet-tftp", action="store_true", help="peers only for TFTP")
    ap.add_argument(
        "--serve-flag",
        action="append",
        default=[],
        metavar="FLAG",
        help="extra flag for `bootfleet serve`, e.g. --serve-flag=--tftp-loops=2 (repeatable)",
    )
    ap.add_argument(
        "--no-profile", action="store_true", help="skip the py-spy runs (extra, not timed)"
    )
    ap.add_argument("--render", type=Path, help="only redraw .md and .png from a saved .json")
    args = ap.parse_args(argv)
    if args.render is not None:
        saved = report.load(args.render)
        report.chart(saved, args.render.with_suffix(".png"))
        page = report.markdown(saved) + f"\n![chart]({args.render.stem}.png)\n"
        args.render.with_suffix(".md").write_text(page)
        print(page)
        return 0
    only = set(args.only.split(","))
    repeat = 1 if args.quick else args.repeat
    clients = min(args.clients, 5000) if args.quick else args.clients
    storm_sizes = (50, 100) if args.quick else (200, 500)
    http_seconds = 3 if args.quick else 10

    missing = peers.missing_tools()
    if missing:
        print(
            f"missing tools: {', '.join(missing)}; run bench/run (installs them)", file=sys.stderr
        )
        return 2
    work = Path(tempfile.mkdtemp(prefix="bootfleet-bench-"))
    os.chmod(work, 0o755)
    root = work / "root"
    sums = suite.make_tree(root)
    started = datetime.now(UTC)
    r: dict[str, Any] = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["bench/run", *(argv if argv is not None else sys.argv[1:])]),
        "repeat": repeat,
        "machine": machine(),
        "notes": [],
    }
    with_tftp = peers.bootfleet_has_tftp() and not args.no_bootfleet_tftp
    if not with_tftp:
        r["notes"].append("Bootfleet TFTP not measured (--no-bootfleet-tftp, or no server/tftp).")
    running: list[peers.Server] = []
    try:
        print("starting servers on 127.0.0.1 ...", flush=True)
        ours = http_ours = peers.bootfleet(root, work, tftp=with_tftp, extra=args.serve_flag)
        running.append(ours)
        tftp_servers = [peers.tftpd_hpa(root, work), peers.dnsmasq(root, work)]
        running += tftp_servers
        stock = peers.stock_tftpy(root, work)
        running.append(stock)
        nginx = peers.nginx(root, work)
        running.append(nginx)
        tftp_all = ([ours] if with_tftp else []) + tftp_servers + [stock]
        data_dir = work / "bootfleet-data"

        def step(name: str) -> bool:
            if name in only:
                print(f"[{time.strftime('%H:%M:%S')}] {name} ...", flush=True)
                return True
            return False

        if step("registry"):
            r["registry"] = reg = registry.run(data_dir, http_ours.http_port or 0, work, clients)
            reg.pop("token", None)
        if step("ipxe"):
            r["ipxe"] = suite.ipxe_http(http_ours, nginx, root, clients, work, http_seconds)
        if step("config") and with_tftp:
            r["tftp_config"] = config_section(ours, tftp_servers, root, clients, args.quick)
        if step("single"):
            r["single"] = suite.single(tftp_all, (512, 1468, 8192), repeat)
        if step("storm"):
            storm_rounds = 1 if args.quick else args.storm_repeat
            r["storm_repeat"] = storm_rounds
            r["storm"] = suite.storm(tftp_all, storm_sizes, storm_rounds, sums)
        if step("window"):
            w_servers = ([ours] if with_tftp else []) + tftp_servers
            r["window"] = suite.window(w_servers, (1, 4, 16, 64), repeat, sums)
        if not args.no_profile and profile.py_spy() is not None:
            print(f"[{time.strftime('%H:%M:%S')}] profiles (extra runs, not timed) ...")
            r["profiles"] = profiles(http_ours, ours if with_tftp else None, work, sums)
        if step("download"):
            r["download"] = suite.big_download(http_ours)
            r["big"] = suite.BIG
    finally:
        for s in reversed(running):
            s.stop()
    r["machine"]["load average at end"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    r["seconds"] = (datetime.now(UTC) - started).total_seconds()
    args.out.mkdir(parents=True, exist_ok=True)
    stem = started.strftime("%Y-%m-%d")
    (args.out / f"{stem}.json").write_text(json.dumps(r, indent=1, default=str) + "\n")
    report.chart(r, args.out / f"{stem}.png")
    text = report.markdown(r) + f"\n![chart]({stem}.png)\n"
    (args.out / f"{stem}.md").write_text(text)
    print(text)
    print(f"written {args.out / stem}.md/.png/.json in {r['seconds']:.0f} s")
    shutil.rmtree(work, ignore_errors=True)
    return 0


def config_section(
    ours: peers.Server, peer_list: list[peers.Server], root: Path, clients: int, quick: bool
) -> dict[str, dict[str, float]]:
    """Per-MAC pxelinux config from Bootfleet; a static file of that size from the peers."""

    def name_for(i: int) -> str:
        return "pxelinux.cfg/01-" + registry.mac((i * 7) % clients).replace(":", "-")

    _, res = tftpc.fetch_many((peers.LOOPBACK, ours.tftp_port or 0), [name_for(1)], blksize=1468)
    if not res[0].ok:
        raise RuntimeError(f"per-MAC config over TFTP: {res[0].error}")
    static = root / "pxelinux.cfg" / "same-size"
    static.parent.mkdir(exist_ok=True)
    os.chmod(static.parent, 0o755)
    static.write_bytes(b"#" * res[0].nbytes)
    os.chmod(static, 0o644)
    n, secs = (1000, 3.0) if quick else (20000, 10.0)

    def unregistered(i: int) -> str:  # a new machine: not in the registry (yet)
        return "pxelinux.cfg/01-" + registry.mac(registry.UNREGISTERED + i).replace(":", "-")

    servers: list[tuple[str, Server, Callable[[int], str]]] = [
        ("bootfleet", ours, name_for),
        ("bootfleet, unregistered MACs", ours, unregistered),
    ]
    servers += [(f"{p.name} static", p, lambda _i: "pxelinux.cfg/same-size") for p in peer_list]
    return suite.tftp_config(servers, n, secs)


def profiles(
    http: peers.Server, tftp: peers.Server | None, work: Path, sums: dict[str, str]
) -> dict[str, list[tuple[str, float, float]]]:
    """Where Bootfleet's time goes in the storm and under /ipxe load (py-spy, busy samples)."""
    out = {}
    if tftp is not None:
        raw = work / "storm.pyspy"
        with profile.sampled(tftp.pid, 15, raw):
            suite.storm_once(tftp, 500, sums)
        out["500-client storm, Bootfleet process"] = profile.summarize(raw)
        raw = work / "window.pyspy"
        with profile.sampled(tftp.pid, 10, raw):
            suite.window([tftp], (64,), 3, sums)
        out["14 MiB at windowsize 64 (x3), Bootfleet process"] = profile.summarize(raw)
    raw = work / "ipxe.pyspy"
    script = work / "rotate-macs.lua"
    with profile.sampled(http.pid, 6, raw, gil=True):
        suite.httpload.wrk(
            f"http://{peers.LOOPBACK}:{http.http_port}",
            seconds=5,
            connections=16,
            script=script if script.exists() else None,
        )
    out["/ipxe under wrk, Bootfleet process, GIL holder only"] = profile.summarize(raw)
    return out


if __name__ == "__main__":
    sys.exit(main())
