"""Smoke tests of the benchmark harness's parsing and ratio code (no timing, no servers)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/ is not installed

from bench import httpload, registry, report, suite, tftpc

WRK_OUTPUT = """Running 10s test @ http://127.0.0.1:8080
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.10ms    2.00ms  40.00ms   90.00%
    Req/Sec     3.10k   200.00     3.50k    70.00%
  Latency Distribution
     50%    4.80ms
     75%    5.90ms
     90%    7.10ms
     99%    1.20s
  31000 requests in 10.00s, 5.00MB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 3
Requests/sec:   3100.50
Transfer/sec:    512.00KB
"""


def test_parse_wrk() -> None:
    got = httpload.parse_wrk(WRK_OUTPUT)
    assert got.requests_per_s == 3100.5
    assert got.p50_ms == 4.8
    assert got.p99_ms == 1200.0
    assert got.requests == 31000
    assert got.errors == 6


@pytest.mark.parametrize("text", ["", "12", "3 ms", "fast"])
def test_wrk_duration_refuses_junk(text: str) -> None:
    with pytest.raises(ValueError):
        httpload._ms(text)


def test_percentile_nearest_rank() -> None:
    values = [float(i) for i in range(1, 101)]
    assert suite.pct(values, 50) == 50.0
    assert suite.pct(values, 99) == 99.0
    assert suite.pct([7.0], 99) == 7.0
    assert math.isnan(suite.pct([], 50))


def test_rrq_and_oack() -> None:
    packet = tftpc.rrq("pxelinux.0", {"blksize": 1468, "windowsize": 16})
    assert packet == b"\x00\x01pxelinux.0\x00octet\x00blksize\x001468\x00windowsize\x0016\x00"
    assert tftpc.parse_oack(b"BLKSIZE\x001468\x00tsize\x00100\x00") == {
        "blksize": "1468",
        "tsize": "100",
    }


def test_mac_matches_the_wrk_script() -> None:
    assert registry.mac(0) == "52:54:00:00:00:00"
    assert registry.mac(70000) == "52:54:00:01:11:70"
    assert "math.floor(i / 65536) % 256" in httpload.ROTATE_MACS_LUA


def run_with(ours: float, hpa: float, dnsmasq: float) -> dict[str, object]:
    def storm(wall: float) -> list[dict[str, float]]:
        return [{"wall": wall, "failed": 0, "p50": 1.0, "p99": 2.0, "rss_peak_mib": 40.0}]

    return {
        "date": "2026-01-01 00:00 UTC",
        "storm": {
            200: {"bootfleet": storm(ours), "tftp-hpa": storm(hpa), "dnsmasq": storm(dnsmasq)}
        },
        "single": {"bootfleet": {1468: [1.0, 1.2, 5.0]}, "tftp-hpa": {1468: [1.0, 1.0, 1.0]}},
        "window": {
            "bootfleet": {1: [0.9], 16: [0.1]},
            "dnsmasq": {1: [0.6]},
            "tftp-hpa": {1: [0.4]},
        },
    }


def test_ratios_use_the_best_peer_and_medians() -> None:
    rows = {t: (v, ok) for t, v, _goal, ok in report.targets(run_with(2.0, 4.0, 2.5))}
    assert rows["storm 200: wall / best peer"] == ("0.80x", True)
    assert rows["14 MiB @1468 / tftp-hpa"] == ("1.20x", True)
    assert rows["windowsize 16: speed-up over best lock-step peer"] == ("4.00x", True)
    rows = {t: (v, ok) for t, v, _goal, ok in report.targets(run_with(3.0, 4.0, 2.5))}
    assert rows["storm 200: wall / best peer"] == ("1.20x", False)


def test_markdown_names_every_server() -> None:
    text = report.markdown(run_with(2.0, 4.0, 2.5))
    for name in ("bootfleet", "tftp-hpa", "dnsmasq", "| storm 200: wall / best peer | 0.80x"):
        assert name in text


def test_profile_summary_drops_idle_frames(tmp_path: Path) -> None:
    from bench import profile

    raw = tmp_path / "raw.txt"
    raw.write_text(
        "run (a.py:1);send (t.py:9) 30\n"
        "run (a.py:1);recv (t.py:4) 10\n"
        "run (a.py:1);Condition.wait (threading.py:3) 500\n"
    )
    rows = profile.summarize(raw)
    assert rows[0] == ("send (t.py)", 75.0, 75.0)
    assert [r[0] for r in rows] == ["send (t.py)", "recv (t.py)"]


def test_saved_run_renders_the_same(tmp_path: Path) -> None:
    import json

    run = run_with(2.0, 4.0, 2.5)
    saved = tmp_path / "run.json"
    saved.write_text(json.dumps(run))
    assert report.markdown(report.load(saved)) == report.markdown(run)


def test_round_ratios_compare_within_a_round() -> None:
    runs = {
        "bootfleet": [{"wall": 2.0}, {"wall": 6.0}],
        "tftp-hpa": [{"wall": 4.0}, {"wall": 3.0}],
        "dnsmasq": [{"wall": 2.5}, {"wall": 12.0}],
    }
    assert report.round_ratios(runs) == [0.8, 2.0]


def test_storm_table_has_cpu_accounting_or_says_n_a() -> None:
    run = run_with(2.0, 4.0, 2.5)
    storms = run["storm"][200]  # type: ignore[index]
    assert "server CPU s" in report.markdown(run) and "| n/a | n/a | n/a % |" in report.markdown(
        run
    )
    for name, cpu in (("bootfleet", 1.2), ("tftp-hpa", 3.0), ("dnsmasq", 1.5)):
        storms[name][0].update(server_cpu=cpu, client_cpu=1.0, machine_busy=0.97)
    text = report.markdown(run)
    assert "| 1.20 | 1.00 | 97 % |" in text
    assert "Server CPU, Bootfleet / dnsmasq: 0.80x" in text


def test_cpu_seconds_count_a_reaped_child() -> None:
    from bench import peers

    burn = "import time\nwhile time.process_time() < 0.3: pass"
    parent = (
        "import subprocess, sys, time\n"
        f"subprocess.run([sys.executable, '-c', {burn!r}])\n"  # run() waits: the child is reaped
        "print('reaped', flush=True)\n"
        "time.sleep(30)"
    )
    import subprocess

    with subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True) as p:
        try:
            assert p.stdout is not None and p.stdout.readline() == "reaped\n"
            assert peers.cpu_seconds(p.pid) >= 0.3
        finally:
            p.kill()
    busy, total = peers.machine_cpu()
    assert 0 < busy < total
