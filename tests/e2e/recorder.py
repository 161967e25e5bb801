"""A stand-in install endpoint for checking the test installer alone: records every request.

Run inside the lab namespace: `python recorder.py BIND PORT LOG [ANSWER]`. Each request is one
JSON line in LOG; GET .../answer returns ANSWER's text.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    bind, port, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    answer = sys.argv[4] if len(sys.argv) > 4 else "# test answer file\n"

    class Handler(BaseHTTPRequestHandler):
        def _record(self, body: bytes) -> None:
            line = {
                "method": self.command,
                "path": self.path,
                "content_type": self.headers.get("Content-Type"),
                "body": body.decode(errors="replace"),
            }
            with open(log, "a") as f:
                f.write(json.dumps(line) + "\n")

        def do_GET(self) -> None:
            self._record(b"")
            data = answer.encode() if self.path.endswith("/answer") else b""
            self.send_response(200 if data else 404)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._record(body)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    ThreadingHTTPServer((bind, port), Handler).serve_forever()


if __name__ == "__main__":
    main()
