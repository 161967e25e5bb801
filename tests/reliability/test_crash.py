"""kill -9 of a real `bootfleet serve` in the middle of a stream of acknowledged changes:
after a restart the database is intact, nothing acknowledged is lost, and deadlines that were
running at the crash still fire."""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from server.config import Settings
from tests.reliability.figures import FIGURES
from tests.reliability.helpers import PROFILE, mac, token_in
from tests.serve import Served, admin_token

CRASHES = 3
ACKS_BEFORE_KILL = (15, 30, 45)  # varied, so the kill lands at different points
COUNTER = mac(0xFFFF)


@dataclass
class Stream:
    """Changes sent one after another; `acked` holds those that got a 2xx."""

    url: str
    auth: dict[str, str]
    start: int
    created: list[str] = field(default_factory=list)
    reinstalled: list[str] = field(default_factory=list)
    seq_acked: int = -1
    seq_sent: int = -1
    acks: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        http = requests.Session()
        i = self.start
        while not self.stop.is_set() and i < self.start + 10_000:
            try:
                m = mac(i)
                body = {"mac": m, "profile": "debian12"}
                r = http.post(
                    f"{self.url}/api/v1/clients", json=body, headers=self.auth, timeout=10
                )
                if r.status_code != 201:
                    return
                self.created.append(m)
                self.acks += 1
                self.seq_sent = i
                r = http.patch(
                    f"{self.url}/api/v1/clients/{COUNTER}",
                    json={"variables": {"seq": i}},
                    headers=self.auth,
                    timeout=10,
                )
                if r.status_code != 200:
                    return
                self.seq_acked = i
                self.acks += 1
                r = http.post(
                    f"{self.url}/api/v1/clients/{m}/reinstall", headers=self.auth, timeout=10
                )
                if r.status_code != 200:
                    return
                self.reinstalled.append(m)
                self.acks += 1
            except requests.RequestException:
                return  # the server died under us: what was not acknowledged may be lost
            i += 1


def check_integrity(db: Path) -> None:
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()


def state_on_disk(db: Path, address: str) -> str:
    conn = sqlite3.connect(db)
    try:
        row = conn.execute("SELECT state FROM client WHERE mac = ?", (address,)).fetchone()
        return str(row[0])
    finally:
        conn.close()


def test_kill_dash_nine_loses_nothing_acknowledged(settings: Settings) -> None:
    data, images = settings.data_dir, settings.images
    token = admin_token(data)
    auth = {"Authorization": f"Bearer {token}"}
    opts = ("--boot-timeout", "3", "--reap-interval", "0.3", "--grace-seconds", "1")
    server = Served(data, images, *opts).start()
    http = requests.Session()
    try:
        assert (
            http.post(f"{server.url}/api/v1/profiles", json=PROFILE, headers=auth).status_code
            == 201
        )
        r = http.post(f"{server.url}/api/v1/clients", json={"mac": COUNTER}, headers=auth)
        assert r.status_code == 201
        all_created: list[str] = []
        all_reinstalled: list[str] = []
        last_seq = -1
        for crash in range(CRASHES):
            # a machine in the middle of booting its installer when the server dies
            booting = mac(0x10000 + crash)
            assert (
                http.post(
                    f"{server.url}/api/v1/clients",
                    json={"mac": booting, "profile": "debian12"},
                    headers=auth,
                ).status_code
                == 201
            )
            assert (
                http.post(
                    f"{server.url}/api/v1/clients/{booting}/reinstall", headers=auth
                ).status_code
                == 200
            )

            stream = Stream(server.url, auth, start=1000 * (crash + 1))
            worker = threading.Thread(target=stream.run)
            worker.start()
            for _ in range(2000):  # bounded wait for the stream to get going
                if stream.acks >= ACKS_BEFORE_KILL[crash] or not worker.is_alive():
                    break
                time.sleep(0.01)
            # boot the installer (deadline in 3 s) and kill the server straight after
            token_in(http.get(f"{server.url}/ipxe?mac={booting}").text)
            server.kill9()
            stream.stop.set()
            worker.join(timeout=30)
            assert not worker.is_alive()
            assert stream.acks >= ACKS_BEFORE_KILL[crash], "the stream stopped before the kill"

            check_integrity(data / "bootfleet.db")
            assert state_on_disk(data / "bootfleet.db", booting) == "booting"
            server.start()
            all_created += stream.created
            all_reinstalled += stream.reinstalled
            # every acknowledged change survived
            for m in all_created:
                r = http.get(f"{server.url}/api/v1/clients/{m}", headers=auth)
                assert r.status_code == 200, f"acknowledged client {m} lost"
            for m in all_reinstalled:
                body = http.get(f"{server.url}/api/v1/clients/{m}", headers=auth).json()
                assert body["state"] == "pending" and body["install"], f"reinstall of {m} lost"
            seq = http.get(f"{server.url}/api/v1/clients/{COUNTER}", headers=auth).json()[
                "variables"
            ]["seq"]
            assert stream.seq_acked <= seq <= stream.seq_sent, (
                seq,
                stream.seq_acked,
                stream.seq_sent,
            )
            assert seq > last_seq
            last_seq = seq
            # the deadline that was running at the crash fires in the restarted server
            for _ in range(600):
                body = http.get(f"{server.url}/api/v1/clients/{booting}", headers=auth).json()
                if body["state"] != "booting":
                    break
                time.sleep(0.05)
            assert body["state"] == "failed" and body["install"]["result"] == "deadline", body
            FIGURES["crashes survived (kill -9)"] += 1
            FIGURES["acknowledged changes checked after crashes"] += stream.acks
    finally:
        server.stop()
    check_integrity(data / "bootfleet.db")
