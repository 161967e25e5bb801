"""Counters of the proxyDHCP service and their Prometheus text rendering."""

from __future__ import annotations

import threading
from collections import Counter

PREFIX = "bootfleet_proxydhcp"


class ProxyStats:
    """Thread-safe counters, one update per datagram."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.answers: Counter[tuple[str, str]] = Counter()  # (offer|ack, arch)
        self.unanswered: Counter[str] = Counter()  # PXE requests left unanswered, by reason
        self.ignored: Counter[str] = Counter()  # datagrams dropped, by reason

    def answered(self, kind: str, arch: str, n: int = 1) -> None:
        with self._lock:
            self.answers[(kind, arch)] += n

    def not_answered(self, reason: str) -> None:
        with self._lock:
            self.unanswered[reason] += 1

    def dropped(self, reason: str) -> None:
        with self._lock:
            self.ignored[reason] += 1

    def render_prometheus(self) -> str:
        """Prometheus text exposition format (version 0.0.4)."""
        with self._lock:
            answers = dict(self.answers)
            unanswered = dict(self.unanswered)
            ignored = dict(self.ignored)
        out = _head("answers_total", "Proxy offers (port 67) and acks (port 4011) sent.")
        for (kind, arch), n in sorted(answers.items()):
            out += f'{PREFIX}_answers_total{{kind="{kind}",arch="{arch}"}} {n}\n'
        out += _head("unanswered_total", "PXE requests left unanswered, by reason.")
        for reason, n in sorted(unanswered.items()):
            out += f'{PREFIX}_unanswered_total{{reason="{_label(reason)}"}} {n}\n'
        out += _head("ignored_packets_total", "Datagrams dropped unread, by reason.")
        for reason, n in sorted(ignored.items()):
            out += f'{PREFIX}_ignored_packets_total{{reason="{_label(reason)}"}} {n}\n'
        return out


def _head(name: str, help_: str) -> str:
    return f"# HELP {PREFIX}_{name} {help_}\n# TYPE {PREFIX}_{name} counter\n"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
