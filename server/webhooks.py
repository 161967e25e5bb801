"""The courier: POSTs the outbox's deliveries to their hooks, signed, retried with backoff.

Each POST carries
    X-Bootfleet-Event:      the event name (installed, failed, ...)
    X-Bootfleet-Delivery:   the delivery's id; a retry repeats it, so a receiver can drop a
                            repeat it already handled
    X-Bootfleet-Timestamp:  Unix seconds when this attempt was signed
    X-Bootfleet-Signature:  sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" keyed with the
                            hook's secret>
A 2xx answer is a delivery; anything else (an error status, a refused connection, a timeout)
is retried after 5 s, 10 s, 20 s, ... up to an hour apart, and given up after `max_attempts`.
Redirects are not followed: the signature was made for the URL the admin gave.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from server.models import utcnow
from server.registry import hooks
from server.registry.database import session_scope

log = logging.getLogger(__name__)

FIRST_DELAY = 5.0
MAX_DELAY = 3600.0
MAX_ATTEMPTS = 24  # ~5 s to the hourly cap by attempt 10, then hourly: about 15 hours in all
KEEP_DELIVERED = timedelta(days=7)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def backoff(attempts: int, rng: Callable[[], float] = random.random) -> float:
    """Seconds before retry number `attempts` (1 after the first failure): doubling, capped,
    with ±20 % jitter so that a receiver back from an outage is not hit by every hook at once."""
    base = min(FIRST_DELAY * 2 ** (attempts - 1), MAX_DELAY)
    return base * (0.8 + 0.4 * rng())


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


@dataclass(frozen=True)
class _Parcel:
    """One claimed delivery, with what sending it needs (no ORM object leaves the session)."""

    delivery_id: int
    body: str
    attempts: int
    url: str
    secret: str


@dataclass
class Outcome:
    ok: bool
    error: str = ""


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Outcome:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _opener.open(request, timeout=timeout) as answer:
            answer.read(64 * 1024)
            return Outcome(200 <= answer.status < 300, f"HTTP {answer.status}")
    except urllib.error.HTTPError as exc:
        return Outcome(False, f"HTTP {exc.code}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Outcome(False, f"{type(exc).__name__}: {reason}"[:512])


Poster = Callable[[str, bytes, dict[str, str], float], Outcome]


class Courier(threading.Thread):
    """Sends what the outbox owes, every `interval` seconds, until stopped."""

    def __init__(
        self,
        engine: Engine,
        base_url: str,
        *,
        interval: float = 2.0,
        timeout: float = 10.0,
        max_attempts: int = MAX_ATTEMPTS,
        poster: Poster = post,
        delay: Callable[[int], float] = backoff,
    ) -> None:
        super().__init__(name="bootfleet-courier", daemon=True)
        self.engine = engine
        self.base_url = base_url.rstrip("/")
        self.interval = interval
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.poster = poster
        self.delay = delay
        self.stopping = threading.Event()
        self.sent = 0
        self.failed = 0
        self._pruned_at = 0.0

    def round(self) -> int:
        """Attempt every delivery that is due; how many were attempted."""
        now = utcnow()
        with session_scope(self.engine, write=True) as session:
            batch = [
                _Parcel(d.id, d.body, d.attempts, h.url, h.secret)  # type: ignore[arg-type]
                for d, h in hooks.claim(session, now)
            ]
        for parcel in batch:
            self._attempt(parcel)
        if time.monotonic() - self._pruned_at > 300:
            self._pruned_at = time.monotonic()
            with session_scope(self.engine, write=True) as session:
                hooks.prune_delivered(session, utcnow() - KEEP_DELIVERED)
        return len(batch)

    def _attempt(self, parcel: _Parcel) -> None:
        delivery_id, url = parcel.delivery_id, parcel.url
        data = self._absolute(parcel.body).encode()
        stamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "bootfleet-webhook",
            "X-Bootfleet-Event": str(json.loads(data).get("event", "")),
            "X-Bootfleet-Delivery": str(delivery_id),
            "X-Bootfleet-Timestamp": str(stamp),
            "X-Bootfleet-Signature": sign(parcel.secret, stamp, data),
        }
        outcome = self.poster(url, data, headers, self.timeout)
        now = utcnow()
        with session_scope(self.engine, write=True) as session:
            if outcome.ok:
                hooks.delivered(session, delivery_id, now)
                self.sent += 1
                return
            self.failed += 1
            tries = parcel.attempts + 1
            next_at: datetime | None = None
            if tries < self.max_attempts:
                next_at = now + timedelta(seconds=self.delay(tries))
            hooks.retry_later(session, delivery_id, outcome.error, next_at, now)
        if next_at is None:
            log.warning("webhook %s: delivery %s given up: %s", url, delivery_id, outcome.error)
        else:
            log.info("webhook %s: delivery %s failed (%s); retry", url, delivery_id, outcome.error)

    def _absolute(self, body: str) -> str:
        """Make the failure-log link absolute with the address this server advertises."""
        doc = json.loads(body)
        link = doc.get("failure_log")
        if isinstance(link, str) and link.startswith("/"):
            doc["failure_log"] = self.base_url + link
            return json.dumps(doc, separators=(",", ":"))
        return body

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                busy = self.round()
            except Exception:  # never let one bad round end the thread
                log.exception("webhook round failed")
                busy = 0
            if self.stopping.wait(0 if busy else self.interval):
                return

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=self.timeout + 5)
