"""Prometheus text of the TFTP counters."""

from __future__ import annotations

from server.tftp import TftpStats


def test_render_prometheus() -> None:
    stats = TftpStats()
    stats.transfer_started()
    stats.transfer_started()
    stats.transfer_finished("ok", 1000, 0)
    stats.error_sent(1)
    stats.error_sent(1)
    stats.refused_by_cap("per_source")
    text = stats.render_prometheus()
    for line in [
        "# TYPE bootfleet_tftp_transfers_started_total counter",
        "bootfleet_tftp_transfers_started_total 2",
        "bootfleet_tftp_transfers_ok_total 1",
        "bootfleet_tftp_active_transfers 1",
        "bootfleet_tftp_bytes_sent_total 1000",
        'bootfleet_tftp_errors_sent_total{code="1"} 2',
        'bootfleet_tftp_refused_total{cap="per_source"} 1',
    ]:
        assert line in text.splitlines()
    stats.transfer_finished("timeout", 512, 5)
    text = stats.render_prometheus()
    assert 'bootfleet_tftp_transfers_failed_total{reason="timeout"} 1' in text.splitlines()
    assert "bootfleet_tftp_active_transfers 0" in text.splitlines()
    assert text.endswith("\n")
    for line in text.splitlines():
        assert line.startswith("# ") or line.startswith("bootfleet_tftp_")
