"""HTTP load with wrk (Debian's), and the parsing of its report."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

# A wrk script that asks /ipxe for a different registered MAC on every request. The MACs
# are the ones bench.registry.mac(i) writes into the import CSV.
ROTATE_MACS_LUA = """
local n = 0
local count = {count}
local threadno = 0
setup = function(thread)
  thread:set("offset", threadno * 7919)
  threadno = threadno + 1
end
request = function()
  n = n + 1
  local i = {base} + (n * 7 + offset) % count
  local path = string.format("/ipxe?mac=52:54:%02x:%02x:%02x:%02x&arch=x86_64",
    math.floor(i / 16777216) % 256, math.floor(i / 65536) % 256,
    math.floor(i / 256) % 256, i % 256)
  return wrk.format("GET", path)
end
"""


@dataclass
class HttpLoad:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(output: str) -> HttpLoad:
    """Requests/s, p50/p99 latency and errors from `wrk --latency` output."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    errors = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if m:
        errors += sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if m:
        errors += int(m.group(1))
    return HttpLoad(rps, p50, p99, total, errors)


def wrk(
    url: str,
    *,
    seconds: int,
    connections: int,
    threads: int = 1,
    script: Path | None = None,
) -> HttpLoad:
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        "5s",
    ]
    if script is not None:
        argv += ["-s", str(script)]
    out = subprocess.run(
        [*argv, url], capture_output=True, text=True, timeout=seconds + 30, check=True
    ).stdout
    return parse_wrk(out)


def write_rotate_script(path: Path, count: int, base: int = 0) -> Path:
    """A wrk script asking /ipxe for `count` MACs in turn, from bench.registry.mac(base)."""
    path.write_text(ROTATE_MACS_LUA.replace("{count}", str(count)).replace("{base}", str(base)))
    return path
