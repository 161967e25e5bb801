"""Fixtures for the answer-file tests; the helpers live in answerkit.py."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import pytest
from answerkit import Recorder, RecordingHandler, Render, render_template


@pytest.fixture
def render() -> Render:
    return render_template


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    RecordingHandler.posts = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), RecordingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/v1/installs/tok", RecordingHandler.posts
    server.shutdown()
    thread.join()
    server.server_close()
