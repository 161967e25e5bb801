"""Turn one run's figures into the results page (Markdown) and a chart (PNG)."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

OURS = "bootfleet"
LOCKSTEP_PEERS = ("tftp-hpa", "dnsmasq")
CPU_FIGURES = ("server_cpu", "client_cpu", "machine_busy")


def med(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(b) and not math.isnan(a) else math.nan


def fmt(x: float, digits: int = 2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _cpu_us(load: dict[str, Any]) -> str:
    """A load's server CPU per request in µs (runs from before it was recorded: n/a)."""
    return fmt(load.get("server_cpu_us", math.nan), 0)


def best_peer(per_server: dict[str, float]) -> tuple[str, float]:
    """The fastest of tftp-hpa and dnsmasq (lower is better)."""
    found = [(per_server[p], p) for p in LOCKSTEP_PEERS if p in per_server]
    if not found:
        return "", math.nan
    value, name = min(found)
    return name, value


def storm_medians(runs: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Per server: median wall, worst failures, median per-client p50/p99, peak RSS."""
    out = {}
    for server, rs in runs.items():
        out[server] = {
            "wall": med([r["wall"] for r in rs]),
            "failed": max((r["failed"] for r in rs), default=0),
            "p50": med([r["p50"] for r in rs]),
            "p99": med([r["p99"] for r in rs]),
            "rss_peak_mib": max((r["rss_peak_mib"] for r in rs), default=math.nan),
            # CPU accounting (runs from before it was recorded lack it: n/a)
            **{k: med([r[k] for r in rs if k in r]) for k in CPU_FIGURES},
        }
    return out


def round_ratios(runs: dict[str, list[dict[str, float]]]) -> list[float]:
    """Bootfleet's storm wall time over the best peer's, round by round: the servers of one
    round ran back to back, so a load spike on the shared machine hits them alike."""
    if OURS not in runs:
        return []
    out = []
    for i, ours in enumerate(runs[OURS]):
        peers = [runs[p][i]["wall"] for p in LOCKSTEP_PEERS if p in runs and i < len(runs[p])]
        if peers:
            out.append(ours["wall"] / min(peers))
    return out


def targets(r: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """(target, measured, goal, met) for every target of the issue that this run measured."""
    rows: list[tuple[str, str, str, bool | None]] = []

    def add(name: str, value: float, goal: str, ok: bool, unit: str = "") -> None:
        rows.append((name, "n/a" if math.isnan(value) else f"{value:.2f}{unit}", goal, ok))

    for n, runs in (r.get("storm") or {}).items():
        m = storm_medians(runs)
        if OURS in m:
            _, best = best_peer({k: v["wall"] for k, v in m.items()})
            q = ratio(m[OURS]["wall"], best)
            add(f"storm {n}: wall / best peer", q, "<= 1.00x", q <= 1.0, "x")
            per_round = round_ratios(runs)
            if len(per_round) > 1:
                q = med(per_round)
                add(f"storm {n}: median of per-round ratios", q, "<= 1.00x", q <= 1.0, "x")
            add(f"storm {n}: failed transfers", m[OURS]["failed"], "0", m[OURS]["failed"] == 0)
            add(
                f"storm {n}: peak RSS",
                m[OURS]["rss_peak_mib"],
                "<= 150 MiB",
                m[OURS]["rss_peak_mib"] <= 150,
                " MiB",
            )
    single = r.get("single") or {}
    if OURS in single and "tftp-hpa" in single:
        q = ratio(med(single[OURS][1468]), med(single["tftp-hpa"][1468]))
        add("14 MiB @1468 / tftp-hpa", q, "<= 1.25x", q <= 1.25, "x")
    win = r.get("window") or {}
    if OURS in win and 16 in win[OURS]:
        _, best = best_peer({k: med(v[1]) for k, v in win.items() if 1 in v})
        q = ratio(best, med(win[OURS][16]))
        add("windowsize 16: speed-up over best lock-step peer", q, ">= 3.00x", q >= 3.0, "x")
    http = r.get("ipxe") or {}
    if http:
        ours = http["bootfleet"]
        add(
            "/ipxe requests/s at 100k clients",
            ours["requests_per_s"],
            ">= 2000",
            ours["requests_per_s"] >= 2000,
        )
        add("/ipxe p99", ours["p99_ms"], "<= 20 ms", ours["p99_ms"] <= 20, " ms")
    cfg = (r.get("tftp_config") or {}).get(OURS)
    if cfg:
        add("TFTP per-MAC config p99", cfg["p99_ms"], "<= 10 ms", cfg["p99_ms"] <= 10, " ms")
    reg = r.get("registry") or {}
    if reg:
        add(
            f"import of {reg['clients']:,} clients",
            reg["import_s"],
            "<= 10 s",
            reg["import_s"] <= 10,
            " s",
        )
        add(
            "filtered client page",
            reg["filtered_page_ms"],
            "<= 50 ms",
            reg["filtered_page_ms"] <= 50,
            " ms",
        )
    dl = r.get("download") or {}
    if dl:
        swing = dl["rss_max_mib"] - dl["rss_before_mib"]
        add("RSS growth through 1 GiB download", swing, "<= 10 MiB", abs(swing) <= 10, " MiB")
    return rows


def markdown(r: dict[str, Any]) -> str:
    lines = [f"# Bootfleet benchmark, {r['date']}", ""]
    mach = r.get("machine", {})
    lines += ["## Machine", ""]
    lines += [f"- {k}: {v}" for k, v in mach.items()]
    lines += [
        "",
        f"Command: `{r.get('command', 'make bench')}`. All traffic on 127.0.0.1. "
        f"Figures are medians of {r.get('repeat', 3)} interleaved runs (storms: "
        f"{r.get('storm_repeat', r.get('repeat', 3))} rounds); ratios are "
        "Bootfleet / peer from this run (below 1 is faster).",
        "",
    ]
    rows = targets(r)
    if rows:
        lines += ["## Targets", "", "| target | measured | goal | met |", "|---|---:|---|---|"]
        lines += [f"| {t} | {v} | {g} | {'yes' if ok else 'NO'} |" for t, v, g, ok in rows]
        lines.append("")

    single = r.get("single") or {}
    if single:
        servers = list(single)
        sizes = sorted(next(iter(single.values())))
        lines += ["## 1. Single 14 MiB transfer, lock-step (curl), seconds", ""]
        head = "| blksize | " + " | ".join(servers) + " |"
        ratios = [s for s in servers if s != "tftp-hpa"]
        head += "".join(f" {s} / tftp-hpa |" for s in ratios)
        lines += [head, "|" + "---|" * (1 + len(servers) + len(ratios))]
        for b in sizes:
            base = med(single.get("tftp-hpa", {}).get(b, []))
            row = f"| {b} | " + " | ".join(fmt(med(single[s][b]), 3) for s in servers) + " |"
            row += "".join(f" {fmt(ratio(med(single[s][b]), base))}x |" for s in ratios)
            lines.append(row)
        lines.append("")

    for n, runs in (r.get("storm") or {}).items():
        m = storm_medians(runs)
        peer_name, best = best_peer({k: v["wall"] for k, v in m.items()})
        lines += [f"## 2. Boot storm: {n} clients x 1 MiB at blksize 1468", ""]
        lines += [
            "| server | wall s | failed | client p50 s | client p99 s | peak RSS MiB "
            f"| wall / best peer ({peer_name}) | server CPU s | client CPU s | machine busy |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for s, v in m.items():
            lines.append(
                f"| {s} | {fmt(v['wall'])} | {v['failed']:.0f} | {fmt(v['p50'])} | "
                f"{fmt(v['p99'])} | {fmt(v['rss_peak_mib'], 1)} | {fmt(ratio(v['wall'], best))}x "
                f"| {fmt(v['server_cpu'])} | {fmt(v['client_cpu'])} | "
                f"{fmt(100 * v['machine_busy'], 0)} % |"
            )
        if OURS in m and peer_name:
            ours, peer = m[OURS], m[peer_name]
            lines += [
                "",
                f"Server CPU, Bootfleet / {peer_name}: "
                f"{fmt(ratio(ours['server_cpu'], peer['server_cpu']))}x. Server and client share "
                "the machine's cores; when the machine is near 100 % busy, the wall time is "
                "the CPU both need divided by the cores, not the server's own speed.",
            ]
        per_round = round_ratios(runs)
        if per_round:
            walls = "; ".join(
                f"{s} " + ", ".join(f"{x['wall']:.2f}" for x in rs) for s, rs in runs.items()
            )
            lines += [
                "",
                "Round by round, Bootfleet / best peer of the round: "
                + ", ".join(f"{q:.2f}x" for q in per_round)
                + f" (wall seconds: {walls}).",
            ]
        lines.append("")

    win = r.get("window") or {}
    if win:
        _, best = best_peer({k: med(v[1]) for k, v in win.items() if 1 in v})
        ws = sorted(next(iter(win.values())))
        lines += [
            "## 3. RFC 7440 windowsize: 14 MiB at blksize 1468 (our client), seconds",
            "",
            "Peers without windowsize answer lock-step whatever is asked.",
            "",
        ]
        lines += [
            "| server | " + " | ".join(f"w={w}" for w in ws) + " |",
            "|---|" + "---:|" * len(ws),
        ]
        for s, per in win.items():
            lines.append(f"| {s} | " + " | ".join(fmt(med(per.get(w, [])), 3) for w in ws) + " |")
        if OURS in win:
            lines.append(
                "| speed-up of Bootfleet over best lock-step peer | "
                + " | ".join(f"{fmt(ratio(best, med(win[OURS][w])))}x" for w in ws)
                + " |"
            )
        lines.append("")

    http = r.get("ipxe") or {}
    cfg = r.get("tftp_config") or {}
    if http or cfg:
        lines += ["## 4. Boot decision at 100,000 registered clients", ""]
        lines += [
            "| what | requests/s | p50 ms | p99 ms | errors | vs ceiling | server CPU µs/req |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        if http:
            ours, ceil = http["bootfleet"], http["nginx"]
            lines.append(
                f"| Bootfleet `GET /ipxe?mac=` (rotating MACs, wrk 16 conns) | "
                f"{ours['requests_per_s']:.0f} | {fmt(ours['p50_ms'])} | {fmt(ours['p99_ms'])} | "
                f"{ours['errors']} | "
                f"{fmt(ratio(ours['requests_per_s'], ceil['requests_per_s']))}x | {_cpu_us(ours)} |"
            )
            if "unregistered" in http:
                un = http["unregistered"]
                lines.append(
                    f"| Bootfleet `GET /ipxe?mac=`, 2,000 unregistered MACs (each boot written) | "
                    f"{un['requests_per_s']:.0f} | {fmt(un['p50_ms'])} | {fmt(un['p99_ms'])} | "
                    f"{un['errors']} | "
                    f"{fmt(ratio(un['requests_per_s'], ceil['requests_per_s']))}x | {_cpu_us(un)} |"
                )
            if "static_route" in http:
                fl = http["static_route"]
                lines.append(
                    f"| Bootfleet `GET /boot.ipxe` (static script, no registry: the framework) | "
                    f"{fl['requests_per_s']:.0f} | {fmt(fl['p50_ms'])} | {fmt(fl['p99_ms'])} | "
                    f"{fl['errors']} | "
                    f"{fmt(ratio(fl['requests_per_s'], ceil['requests_per_s']))}x | {_cpu_us(fl)} |"
                )
            lines.append(
                f"| nginx static file of the same size ({http['size']} B) | "
                f"{ceil['requests_per_s']:.0f} | {fmt(ceil['p50_ms'])} | {fmt(ceil['p99_ms'])} | "
                f"{ceil['errors']} | 1.00x | {_cpu_us(ceil)} |"
            )
        ceiling = max(
            (v["requests_per_s"] for k, v in cfg.items() if k.endswith("static")), default=math.nan
        )
        for label, v in cfg.items():
            lines.append(
                f"| {label} TFTP (16 in flight) | {v['requests_per_s']:.0f} | "
                f"{fmt(v['p50_ms'])} | {fmt(v['p99_ms'])} | {v['failed']:.0f} | "
                f"{fmt(ratio(v['requests_per_s'], ceiling))}x | {_cpu_us(v)} |"
            )
        lines.append("")

    reg = r.get("registry") or {}
    if reg:
        lines += [
            "## 5. Registry",
            "",
            "| what | figure |",
            "|---|---:|",
            f"| CSV import of {reg['clients']:,} clients (`bootfleet client import`) | "
            f"{reg['import_s']:.2f} s |",
            f"| first page, `GET /api/v1/clients` (median of 20) | {reg['first_page_ms']:.1f} ms |",
            f"| filtered page, `?state=idle&group=room7` (median of 20) | "
            f"{reg['filtered_page_ms']:.1f} ms |",
            f"| search page, `?q=pc-0999` (median of 5) | {reg['search_page_ms']:.1f} ms |",
            "",
        ]

    dl = r.get("download") or {}
    if dl or r.get("storm"):
        lines += ["## 6. Memory", ""]
        for n, runs in (r.get("storm") or {}).items():
            m = storm_medians(runs)
            lines.append(
                f"- peak RSS in the {n}-client storm: "
                + ", ".join(f"{s} {fmt(v['rss_peak_mib'], 1)} MiB" for s, v in m.items())
            )
        if dl:
            lines.append(
                f"- 1 GiB `GET /images/{r.get('big', 'big.img')}` in {dl['seconds']:.1f} s: RSS "
                f"{dl['rss_before_mib']:.1f} MiB before, {dl['rss_min_mib']:.1f}-"
                f"{dl['rss_max_mib']:.1f} MiB during, {dl['rss_after_mib']:.1f} MiB after"
            )
        lines.append("")
    for title, rows in (r.get("profiles") or {}).items():
        lines += [
            f"## Profile: {title} (py-spy, share of busy samples)",
            "",
            "| function | inclusive % | own % |",
            "|---|---:|---:|",
        ]
        lines += [f"| `{name}` | {inc:.1f} | {own:.1f} |" for name, inc, own in rows]
        lines.append("")
    for note in r.get("notes", []):
        lines.append(f"- {note}")
    return "\n".join(lines) + "\n"


def load(path: Path) -> dict[str, Any]:
    """A run saved as JSON, with its integer keys (sizes, blksizes, windows) restored."""
    import json

    def fix(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {(int(k) if k.isdigit() else k): fix(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [fix(v) for v in obj]
        return obj

    loaded: dict[str, Any] = fix(json.loads(path.read_text()))
    return loaded


def chart(r: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(16, 9))
    colors = {
        "bootfleet": "#2a7",
        "tftp-hpa": "#888",
        "dnsmasq": "#48c",
        "tftpy": "#c84",
        "nginx": "#555",
    }

    def bars(
        ax: Any, groups: list[str], series: dict[str, list[float]], title: str, ylabel: str
    ) -> None:
        width = 0.8 / max(1, len(series))
        for i, (name, values) in enumerate(series.items()):
            xs = [j + i * width for j in range(len(groups))]
            ax.bar(xs, values, width, label=name, color=colors.get(name))
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(groups))], groups)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)

    single = r.get("single") or {}
    if single:
        sizes = sorted(next(iter(single.values())))
        bars(
            axes[0][0],
            [f"blksize {b}" for b in sizes],
            {s: [med(v[b]) for b in sizes] for s, v in single.items()},
            "1. 14 MiB single transfer (curl), lower is better",
            "seconds",
        )
    storms = r.get("storm") or {}
    if storms:
        ns = list(storms)
        meds = {n: storm_medians(storms[n]) for n in ns}
        names = list(meds[ns[0]])
        bars(
            axes[0][1],
            [f"{n} clients" for n in ns],
            {s: [meds[n][s]["wall"] for n in ns] for s in names},
            "2. Boot storm, 1 MiB each: wall time",
            "seconds",
        )
        bars(
            axes[1][2],
            [f"storm {n}" for n in ns],
            {s: [meds[n][s]["rss_peak_mib"] for n in ns] for s in names},
            "6. Peak RSS during the storm",
            "MiB",
        )
    win = r.get("window") or {}
    if win:
        ws = sorted(next(iter(win.values())))
        bars(
            axes[0][2],
            [f"w={w}" for w in ws],
            {s: [med(v.get(w, [])) for w in ws] for s, v in win.items()},
            "3. 14 MiB with RFC 7440 windowsize",
            "seconds",
        )
    http = r.get("ipxe") or {}
    if http:
        ax = axes[1][0]
        labels = ["Bootfleet\n/ipxe"]
        values = [http["bootfleet"]["requests_per_s"]]
        bar_colors = [colors["bootfleet"]]
        if "unregistered" in http:
            labels.append("Bootfleet\n/ipxe unregistered")
            values.append(http["unregistered"]["requests_per_s"])
            bar_colors.append("#c88")
        if "static_route" in http:
            labels.append("Bootfleet\n/boot.ipxe (no DB)")
            values.append(http["static_route"]["requests_per_s"])
            bar_colors.append("#8c8")
        labels.append("nginx\nstatic file")
        values.append(http["nginx"]["requests_per_s"])
        bar_colors.append(colors["nginx"])
        ax.bar(labels, values, color=bar_colors)
        ax.set_yscale("log")
        ax.axhline(2000, color="red", linestyle="--", linewidth=1, label="target 2,000/s")
        ax.set_title("4. Boot decision over HTTP, 100k clients (log scale)", fontsize=10)
        ax.set_ylabel("requests/s")
        ax.tick_params(axis="x", labelsize=8)
        ax.legend(fontsize=8)
    cfg = r.get("tftp_config") or {}
    if cfg:
        ax = axes[1][1]
        names = list(cfg)
        ax.bar(
            [n.replace(", ", ",\n").replace(" static", "\nstatic") for n in names],
            [v["p99_ms"] for v in cfg.values()],
            color=[colors.get(n.split(" ")[0].rstrip(","), "#2a7") for n in names],
        )
        ax.set_yscale("log")
        ax.axhline(10, color="red", linestyle="--", linewidth=1, label="target 10 ms")
        ax.set_title("4. TFTP per-MAC config: p99 latency (log scale)", fontsize=10)
        ax.set_ylabel("ms")
        ax.tick_params(axis="x", labelsize=7)
        ax.legend(fontsize=8)
    fig.suptitle(f"Bootfleet vs tftp-hpa, dnsmasq, nginx, stock tftpy - {r['date']}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
