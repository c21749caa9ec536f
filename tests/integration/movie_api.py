"""The platform's movie API for integration workers, serving the real course objects.

Guardrails fail closed (issue #14): a worker serves only movies the movie API
confirmed, so a worker without one answers nothing.  This serves
``GET /movie/<id,...>`` from ../shared/data's movies.jsonl (a list of the objects
found, 404 when none) and 404 for every user, in a thread of the test process.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

from tests.conftest import sample_path


def load_objects() -> dict[str, bytes]:
    objects: dict[str, bytes] = {}
    with open(sample_path("movies.jsonl"), encoding="utf-8") as f:
        for line in f:
            objects.setdefault(json.loads(line)["id"], line.strip().encode())
    return objects


class MovieApi:
    """``objects``: id → the JSON object's bytes (default: the real course objects)."""

    def __init__(self, objects: dict[str, bytes] | None = None) -> None:
        objects = load_objects() if objects is None else objects

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                found = []
                if self.path.startswith("/movie/"):
                    ids = unquote(self.path[len("/movie/"):]).split(",")
                    found = [objects[i] for i in ids if i in objects]
                body = b"[" + b",".join(found) + b"]" if found else b'{"message": "not found"}'
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
