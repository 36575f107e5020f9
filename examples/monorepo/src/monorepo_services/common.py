"""What every service of the monorepo shares: a JSON-over-HTTP status endpoint."""

from __future__ import annotations

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

import yaml


def serve(name: str, describe: Callable[[], dict]) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"service": name, "python": sys.version.split()[0], **describe()}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

    port = int(os.environ.get("PORT", "8080"))
    print(yaml.safe_dump({"service": name, "port": port}), flush=True)
    ThreadingHTTPServer((os.environ.get("HOST", "0.0.0.0"), port), Handler).serve_forever()
