"""Counters of the TFTP service and their Prometheus text rendering."""

from __future__ import annotations

import threading
from collections import Counter

PREFIX = "bootfleet_tftp"


class TftpStats:
    """Thread-safe counters; updated per transfer or per error, never per DATA packet."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = 0
        self.active = 0
        self.bytes_sent = 0
        self.results: Counter[str] = Counter()  # "ok" or the failure reason
        self.errors_sent: Counter[int] = Counter()  # by TFTP error code
        self.refused: Counter[str] = Counter()  # by cap: "global", "per_source"
        self.ignored: Counter[str] = Counter()  # packets dropped: "malformed", "broadcast", ...
        self.retransmits = 0

    def transfer_started(self) -> None:
        with self._lock:
            self.started += 1
            self.active += 1

    def transfer_finished(self, result: str, sent: int, retransmits: int) -> None:
        with self._lock:
            self.active -= 1
            self.results[result] += 1
            self.bytes_sent += sent
            self.retransmits += retransmits

    def error_sent(self, code: int) -> None:
        with self._lock:
            self.errors_sent[code] += 1

    def refused_by_cap(self, cap: str) -> None:
        with self._lock:
            self.refused[cap] += 1

    def packet_ignored(self, reason: str) -> None:
        with self._lock:
            self.ignored[reason] += 1

    def render_prometheus(self) -> str:
        """Prometheus text exposition format (version 0.0.4)."""
        with self._lock:
            failed = {k: v for k, v in self.results.items() if k != "ok"}
            rows = [
                _metric("transfers_started_total", "counter", "Transfers begun.", self.started),
                _metric(
                    "transfers_ok_total", "counter", "Transfers completed.", self.results["ok"]
                ),
                _metric("transfers_failed_total", "counter", "Transfers failed.", failed, "reason"),
                _metric("active_transfers", "gauge", "Transfers in progress.", self.active),
                _metric("bytes_sent_total", "counter", "DATA payload bytes sent.", self.bytes_sent),
                _metric("retransmits_total", "counter", "DATA/OACK resent.", self.retransmits),
                _metric(
                    "errors_sent_total", "counter", "ERROR packets sent.", self.errors_sent, "code"
                ),
                _metric(
                    "refused_total", "counter", "Requests refused by a cap.", self.refused, "cap"
                ),
                _metric(
                    "ignored_packets_total", "counter", "Packets dropped.", self.ignored, "reason"
                ),
            ]
        return "".join(rows)


def _metric(name: str, kind: str, help_: str, value: object, label: str = "") -> str:
    full = f"{PREFIX}_{name}"
    out = f"# HELP {full} {help_}\n# TYPE {full} {kind}\n"
    if isinstance(value, dict):
        for key in sorted(value, key=str):
            out += f'{full}{{{label}="{key}"}} {value[key]}\n'
        return out
    return out + f"{full} {value}\n"
