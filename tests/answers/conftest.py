"""Fixtures for the answer-file tests; the helpers live in answerkit.py."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from answerkit import HOSTNAME, Recorder, RecordingHandler, Serve, serve_answer


@pytest.fixture
def serve(tmp_path: Path) -> Serve:
    """serve(template, hostname=..., profile=..., **variables): the answer file as served."""
    fleets = itertools.count()

    def serve(
        template: str, *, hostname: str = HOSTNAME, profile: str | None = None, **variables: object
    ) -> str:
        root = tmp_path / f"fleet{next(fleets)}"
        return serve_answer(root, template, variables, hostname=hostname, profile=profile).decode()

    return serve


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
